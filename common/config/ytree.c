/* ytree — see ytree.h. */
#include "ytree.h"

#include "utf8.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>


void ytree_free(ynode *n) {
    if (!n) return;
    for (int i = 0; i < n->n; i++) ytree_free(n->items[i]);
    free(n->items);
    free(n->text);
    free(n);
}

static ynode *yn_new(yn_kind kind, yaml_mark_t mark) {
    ynode *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->kind = kind;
    n->line = (int)mark.line + 1;
    n->col = (int)mark.column + 1;
    return n;
}

static int yn_push(ynode *parent, ynode *child) {
    if (parent->n == parent->cap) {
        int cap = parent->cap ? parent->cap * 2 : 8;
        ynode **items = realloc(parent->items, (size_t)cap * sizeof *items);
        if (!items) return -1;
        parent->items = items;
        parent->cap = cap;
    }
    parent->items[parent->n++] = child;
    return 0;
}

/* 1-based line and column of byte OFFSET in TEXT, the column counted in
 * characters as libyaml counts them (a byte-order mark is not one). */
static void text_position(const char *text, size_t len, size_t offset, size_t *line, size_t *col) {
    const unsigned char *t = (const unsigned char *)text;
    size_t start = len >= 3 && !memcmp(t, "\xef\xbb\xbf", 3) ? 3 : 0;
    if (offset > len) offset = len;
    *line = 1, *col = 1;
    for (size_t i = start; i < offset; i++) {
        if (t[i] == '\n') ++*line, *col = 1;
        else if ((t[i] & 0xc0) != 0x80) ++*col; /* not a continuation byte */
    }
}

int ytree_parse(const char *name, const char *text, size_t len, ynode **out, dp_err *err) {
    yaml_parser_t p;
    yaml_event_t ev;
    ynode *stack[YTREE_MAX_DEPTH + 1];
    int depth = 0, rc = -1;
    ynode *root = NULL;
    *out = NULL;
    /* The file must be UTF-8: the first byte that breaks it is reported
     * where it is (libyaml's reader gives only a rough offset). */
    for (size_t at = 0, k; at < len; at += k) {
        if ((k = (size_t)utf8_valid_len((const unsigned char *)text + at, len - at)) == 0) {
            size_t line, col;
            text_position(text, len, at, &line, &col);
            return dp_fail(err, "%s:%zu:%zu: invalid YAML: invalid UTF-8 (byte 0x%02x)", name,
                           line, col, (unsigned char)text[at]);
        }
    }
    if (!yaml_parser_initialize(&p)) return dp_fail(err, "%s: out of memory", name);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    for (;;) {
        if (!yaml_parser_parse(&p, &ev)) {
            if (p.error == YAML_READER_ERROR) {
                /* The reader (control characters; UTF-8 was checked above)
                 * leaves problem_mark unset but gives the byte offset. */
                size_t line, col;
                text_position(text, len, p.problem_offset, &line, &col);
                dp_fail(err, "%s:%zu:%zu: invalid YAML: %s (U+%04X)", name, line, col,
                        p.problem ? p.problem : "unreadable input", (unsigned)p.problem_value);
            } else {
                dp_fail(err, "%s:%zu:%zu: invalid YAML: %s", name, p.problem_mark.line + 1,
                        p.problem_mark.column + 1, p.problem ? p.problem : "syntax error");
            }
            goto done;
        }
        yaml_event_type_t t = ev.type;
        ynode *node = NULL;
        if (t == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (t == YAML_ALIAS_EVENT) {
            dp_fail(err, "%s:%zu:%zu: YAML aliases are not supported (use plain values)", name,
                    ev.start_mark.line + 1, ev.start_mark.column + 1);
            yaml_event_delete(&ev);
            goto done;
        }
        if (t == YAML_DOCUMENT_START_EVENT && root) {
            dp_fail(err, "%s:%zu:%zu: expected one YAML document, found a second", name,
                    ev.start_mark.line + 1, ev.start_mark.column + 1);
            yaml_event_delete(&ev);
            goto done;
        }
        if (t == YAML_SCALAR_EVENT) {
            node = yn_new(YN_SCALAR, ev.start_mark);
            if (node) {
                node->text = strndup((const char *)ev.data.scalar.value, ev.data.scalar.length);
                node->quoted = ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
                if (!node->text) { ytree_free(node); node = NULL; }
            }
        } else if (t == YAML_MAPPING_START_EVENT || t == YAML_SEQUENCE_START_EVENT) {
            node = yn_new(t == YAML_MAPPING_START_EVENT ? YN_MAP : YN_SEQ, ev.start_mark);
        } else if (t == YAML_MAPPING_END_EVENT || t == YAML_SEQUENCE_END_EVENT) {
            depth--;
            yaml_event_delete(&ev);
            continue;
        } else {
            yaml_event_delete(&ev);
            continue;
        }
        if (!node) {
            dp_fail(err, "%s: out of memory", name);
            yaml_event_delete(&ev);
            goto done;
        }
        if (depth == 0) {
            root = node;
        } else if (yn_push(stack[depth - 1], node)) {
            ytree_free(node);
            dp_fail(err, "%s: out of memory", name);
            yaml_event_delete(&ev);
            goto done;
        }
        if (node->kind != YN_SCALAR) {
            if (depth == YTREE_MAX_DEPTH) {
                dp_fail(err, "%s:%d:%d: nesting deeper than %d levels", name, node->line,
                        node->col, YTREE_MAX_DEPTH);
                yaml_event_delete(&ev);
                goto done;
            }
            stack[depth++] = node;
        }
        yaml_event_delete(&ev);
    }
    if (!root) {
        yaml_mark_t m = {0, 0, 0};
        root = yn_new(YN_MAP, m);
    } else if (root->kind == YN_SCALAR && root->text[0] == '\0' && !root->quoted) {
        ytree_free(root);
        yaml_mark_t m = {0, 0, 0};
        root = yn_new(YN_MAP, m);
    }
    *out = root;
    root = NULL;
    rc = 0;
done:
    ytree_free(root);
    yaml_parser_delete(&p);
    return rc;
}

const ynode *ytree_get(const ynode *map, const char *key) {
    if (!map || map->kind != YN_MAP) return NULL;
    for (int i = 0; i + 1 < map->n; i += 2)
        if (map->items[i]->kind == YN_SCALAR && !strcmp(map->items[i]->text, key))
            return map->items[i + 1];
    return NULL;
}

ynode *ytree_scalar(const char *text) {
    yaml_mark_t m = {0, 0, 0};
    ynode *n = yn_new(YN_SCALAR, m);
    if (n && !(n->text = strdup(text))) {
        free(n);
        return NULL;
    }
    return n;
}

ynode *ytree_empty_map(void) {
    yaml_mark_t m = {0, 0, 0};
    return yn_new(YN_MAP, m);
}
