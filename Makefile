# SPDX-License-Identifier: GPL-2.0
#
# fvp top-level Makefile (Kbuild reads ./Kbuild instead when building the module).
#
#   make soak     the replication simulator over many more seeds (tests/sim; make test runs 1,200: 600 of them with host list changes)
#   make check    host-side gates and tests for the inner loop, under 5 minutes: rustfmt,
#                 no unsafe in driver modules, clippy -D warnings, cargo test (scripts/check.sh)
#   make test     install what is missing, build everything, run every test
#   make demo     three guests: a replicated write-back volume, its owner killed mid-run
#   make bench    compare fvp with brd, dm-linear, dm-cache, dm-writecache, bcache in one guest
#   make bench-replication   replicated writes (peers=0/1/2) vs DRBD protocol C, three guests
#   make module   build fvp.ko (against the cached test kernel, or KDIR=...)
#   make fvpctl   build the control tool
#
# Against a real host kernel (Rust-enabled, built with LLVM=1 and the same rustc):
#   make module KDIR=/lib/modules/$(uname -r)/build RUSTC=rustc BINDGEN=bindgen

SHELL := /bin/bash
FVP_CACHE ?= $(HOME)/.cache/fvp
export FVP_CACHE
RUSTC ?= /usr/bin/rustc
BINDGEN ?= $(FVP_CACHE)/tools/bin/bindgen

# Without KDIR, build (or reuse from the cache) the test kernel.
ifeq ($(origin KDIR),undefined)
kdir = $$(scripts/kernel/build.sh)
else
kdir = $(KDIR)
endif

.PHONY: all bootstrap kernel module fvpctl host-test check test soak demo bench bench-replication clean

all: module fvpctl

bootstrap:
	scripts/bootstrap.sh

kernel: bootstrap
	scripts/kernel/build.sh

module:
	kdir=$(kdir) && $(MAKE) -C "$$kdir" M=$(CURDIR) LLVM=1 RUSTC=$(RUSTC) BINDGEN=$(BINDGEN) modules

fvpctl:
	cargo build --release --locked -p fvpctl

host-test:
	cargo test --locked --workspace

check:
	scripts/check.sh

test: bootstrap
	scripts/run-tests.sh

# SEEDS per policy (peers=1 and peers=2), then the scripted scenarios.
SEEDS ?= 20000
soak:
	cargo run --release --locked -p fvp-sim --example soak -- --seeds $(SEEDS) --from 1000
	cargo run --release --locked -p fvp-sim --example soak -- --host-list-changes --hosts 5 --seeds $(SEEDS) --from 1000
	cargo run --release --locked -p fvp-sim --example soak -- --scenarios --seeds 200

demo: bootstrap
	scripts/demo.sh

bench: bootstrap
	scripts/bench.sh

bench-replication: bootstrap
	scripts/bench-replication.sh

clean:
	-kdir=$(kdir) && $(MAKE) -C "$$kdir" M=$(CURDIR) LLVM=1 RUSTC=$(RUSTC) BINDGEN=$(BINDGEN) clean
	cargo clean
	rm -rf build
