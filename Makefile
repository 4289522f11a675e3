# dpoc — Direct Preference Optimization in C.
#   make            build build/dpoc
#   make demo       install missing runtime packages, build, run the embedded default
#   make test       install missing runtime + test packages, build, run every test  (SANITIZE=1: under ASan+UBSan)
#   make sft / precompute / train / sweep / eval / report   CONFIG=pipeline.yaml SET="key=value ..."
#                   (with the default CONFIG, make precompute runs make sft first when its model is missing)
#                   NP=2: under mpirun -np 2 (data parallel; MPIRUN/MPIFLAGS to change the launcher)
#   make deps       install the missing Debian packages building and running need
#   make test-deps  ... and those make test, bench and fuzz need on top (tests/deps.sh lists both)
#   make bench      benchmarks side by side with PyTorch
#   make fuzz       libFuzzer harnesses, FUZZ_SECONDS=60 each

# common/<part>/ holds one part of the library each; every folder is on the
# include path, so a header is named by its file name alone.
COMMON_INC := $(patsubst %/,-I%,$(sort $(dir $(wildcard common/*/*.h))))

CONFIG   ?= pipeline.yaml
SET      ?=
SANITIZE ?=
PYTHON   ?= /usr/bin/python3

PKGS := openblas sqlite3 libzstd yaml-0.1 jansson libpcre2-8 libutf8proc libxxhash zlib ompi-c

ifeq ($(SANITIZE),1)
BUILD    ?= build/san
SANFLAGS := -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1
else
BUILD    ?= build
SANFLAGS :=
endif

CC       ?= gcc
CFLAGS   ?= -O2 -g
# -fno-trapping-math -fno-math-errno: no code here reads floating-point
# exception flags or errno after maths, and without them GCC will not
# vectorise loops that compare floats (layers.c) or take square roots (optim.c).
CFLAGS   += -std=c11 -D_GNU_SOURCE -fno-trapping-math -fno-math-errno -Wall -Wextra -Werror -fopenmp $(COMMON_INC) $(SANFLAGS)
CFLAGS   += $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm
LDFLAGS  += -fopenmp $(SANFLAGS)

COMMON_SRC := $(wildcard common/*/*.c)
STAGE_SRC  := $(wildcard stages/*.c)
TEST_SRC   := $(wildcard tests/test_*.c)
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/%.o)
STAGE_OBJ  := $(STAGE_SRC:%.c=$(BUILD)/%.o)
TEST_BIN   := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all deps test-deps demo test sft precompute train sweep report eval bench fuzz clean check-deps
.DEFAULT_GOAL := all

all: $(BUILD)/dpoc

# Install what is missing (as root, via sudo, or print the command): deps
# for building and running, test-deps for the tests, benchmarks and fuzzers.
deps:
	@sh tests/deps.sh install runtime

test-deps:
	@sh tests/deps.sh install test

check-deps:
	@sh tests/deps.sh check test

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# The schemas are compiled into the binary (.incbin in common/config/config.c, common/store/store.c).
$(BUILD)/common/config/config.o: schemas/pipeline.schema.yaml
$(BUILD)/common/store/store.o: schemas/store.sql

$(BUILD)/libdpoc.a: $(COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/dpoc: $(STAGE_OBJ) $(BUILD)/libdpoc.a
	$(CC) $(LDFLAGS) -o $@ $(STAGE_OBJ) $(BUILD)/libdpoc.a $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(BUILD)/libdpoc.a tests/check.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -MMD -MP $< -o $@ $(BUILD)/libdpoc.a $(LDFLAGS) $(LDLIBS)

test: test-deps
	@$(MAKE) --no-print-directory $(BUILD)/dpoc $(TEST_BIN)
	@BUILD=$(BUILD) PYTHON=$(PYTHON) SANITIZE=$(SANITIZE) sh tests/run.sh

demo: deps
	@$(MAKE) --no-print-directory $(BUILD)/dpoc
	@sh examples/demo.sh $(BUILD)/dpoc

# The binary the stage targets run; make's command line may name another
# (tests/e2e_first_contact.sh runs these targets in a copy of the repository).
DPOC := $(BUILD)/dpoc

# NP=N runs sft, precompute and train data parallel under mpirun (README:
# "Beyond one machine"); as root Open MPI also wants --allow-run-as-root.
NP      ?=
MPIRUN  ?= mpirun
MPIFLAGS ?=
LAUNCH  := $(if $(NP),$(MPIRUN) -np $(NP) $(MPIFLAGS) ,)

sft precompute train: $(DPOC)
	$(LAUNCH)$(DPOC) $@ -c $(CONFIG) $(foreach s,$(SET),--set $(s))

sweep report eval: $(DPOC)
	$(DPOC) $@ -c $(CONFIG) $(foreach s,$(SET),--set $(s))

# The default pipeline's reference is the model make sft trains
# (reference.model: runs/sft/model in pipeline.yaml), so on a fresh clone
# make precompute trains it first and `make precompute && make train` runs
# sft, precompute and train. Another CONFIG: dpoc says which command makes a
# missing reference.
DEFAULT_REFERENCE := runs/sft/model/model.safetensors
ifeq ($(CONFIG),pipeline.yaml)
precompute: | $(DEFAULT_REFERENCE)
endif
$(DEFAULT_REFERENCE): | $(DPOC)
	$(LAUNCH)$(DPOC) sft -c pipeline.yaml $(foreach s,$(SET),--set $(s))

bench: test-deps
	@$(MAKE) --no-print-directory $(BUILD)/dpoc
	@BUILD=$(BUILD) PYTHON=$(PYTHON) sh tests/bench/run.sh
	@DPOC=$(BUILD)/dpoc PYTHON=$(PYTHON) sh tests/bench/mpi.sh $(BUILD)/bench

# libFuzzer harnesses (clang), FUZZ_SECONDS per harness.
FUZZ_SECONDS ?= 60
fuzz: test-deps
	@FUZZ_SECONDS=$(FUZZ_SECONDS) sh tests/fuzz/run.sh

clean:
	rm -rf build

-include $(COMMON_OBJ:.o=.d) $(STAGE_OBJ:.o=.d) $(TEST_BIN:=.d)
