-- store.sql — the schema of a dpoc store (schema version 1).
--
-- Applied by common/store/store.c (which embeds this file) when it creates a store,
-- inside one transaction; store.c then sets PRAGMA application_id = 'dpoc'
-- and PRAGMA user_version = STORE_SCHEMA_VERSION. Every statement is
-- idempotent. Change the layout only together with STORE_SCHEMA_VERSION and
-- a migration in store.c.
--
-- Blob columns hold one zstd frame each, with its content size and a content
-- checksum. The 4-byte values (int32 token ids, float32 log-probabilities,
-- little-endian) are byte-shuffled before compression: byte k of every value
-- goes to plane k, planes stored one after the other (as Blosc does), which
-- groups the slowly varying sign/exponent bytes so zstd can compress them.

-- Key/value facts about the file itself (what created it, when).
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One row per preference example, keyed by its content id (a hash of the
-- rendered prompt/chosen/rejected, so reordering the data file changes
-- nothing). Everything that depends on the reference model lives in
-- ref_rows. `ord` is the position in the dataset: store order is (ord, id).
CREATE TABLE IF NOT EXISTS examples (
    id     TEXT PRIMARY KEY,
    split  TEXT NOT NULL CHECK (split IN ('train', 'eval')),
    source TEXT NOT NULL,                  -- data file the row came from
    line   INTEGER NOT NULL CHECK (line >= 1),
    ord    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS examples_order ON examples (ord, id);
CREATE INDEX IF NOT EXISTS examples_split_order ON examples (split, ord, id);

-- One row per reference fingerprint: a hash over everything that determines
-- the cached values (weights, config, tokenizer, template, truncation, BOS/EOS
-- policy, engine version) and a JSON object describing it, stored canonical
-- (keys sorted, compact) so two descriptions compare as strings.
CREATE TABLE IF NOT EXISTS refs (
    fingerprint TEXT PRIMARY KEY,
    description TEXT NOT NULL
);

-- The values of one example under one reference: token ids (chosen/rejected
-- include the appended EOS), the summed log-probabilities of each response
-- and the log-probability of every response token. The counts are stored
-- beside the blobs so a reader knows the decoded sizes before decompressing.
CREATE TABLE IF NOT EXISTS ref_rows (
    example_id           TEXT NOT NULL REFERENCES examples (id) ON DELETE CASCADE,
    fingerprint          TEXT NOT NULL REFERENCES refs (fingerprint) ON DELETE CASCADE,
    n_prompt             INTEGER NOT NULL CHECK (n_prompt >= 0),
    n_chosen             INTEGER NOT NULL CHECK (n_chosen >= 1),
    n_rejected           INTEGER NOT NULL CHECK (n_rejected >= 1),
    ref_chosen_logp      REAL NOT NULL,
    ref_rejected_logp    REAL NOT NULL,
    prompt_ids           BLOB NOT NULL,    -- int32[n_prompt], shuffled
    chosen_ids           BLOB NOT NULL,    -- int32[n_chosen], shuffled
    rejected_ids         BLOB NOT NULL,    -- int32[n_rejected], shuffled
    chosen_token_logps   BLOB NOT NULL,    -- float32[n_chosen], shuffled
    rejected_token_logps BLOB NOT NULL,    -- float32[n_rejected], shuffled
    PRIMARY KEY (example_id, fingerprint)
);
CREATE INDEX IF NOT EXISTS ref_rows_fingerprint ON ref_rows (fingerprint);

-- Training runs (one per `dpoc train`, or per sweep point) with the resolved
-- configuration they ran with.
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    config_yaml TEXT NOT NULL,
    started_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- One JSON object per logged step (train and eval metrics may share a step,
-- so the step is not unique).
CREATE TABLE IF NOT EXISTS metrics (
    id     INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step   INTEGER NOT NULL,
    json   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_run_step ON metrics (run_id, step);
