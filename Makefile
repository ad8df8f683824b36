# OmniRun: the two commands are `make run` (the server) and `make test`.
SHELL := /bin/bash
SWIFT ?= $(shell command -v swift 2>/dev/null || echo /opt/swift/usr/bin/swift)
export PATH := /opt/swift/usr/bin:$(PATH)
AGENT := .build/agent/omnirun-agent
TEMPLATE ?= playground
# Every built-in template (images/templates/*); `make templates` builds them all.
TEMPLATES ?= all
# Light templates that `make test` builds and tests besides playground (~1 min each when new).
TEST_TEMPLATES ?= javascript php
CMD ?= python3 -c 'import platform; print("hello from", platform.node())'
# Passed to the recipe through the environment, so any quoting in CMD survives.
export CMD

.PHONY: deps agent image templates test-images build release install run serve exec prepare test test-all bench bench-agents clean
PORT ?= 8080
# Where `make install` puts omni and omnirun: $(PREFIX)/bin (PREFIX from the environment, else /usr/local).
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin

deps:            ## Debian packages the product needs (idempotent)
	scripts/install-deps.sh

agent:           ## the guest agent: release, static Swift stdlib, stripped
	$(SWIFT) build -c release --static-swift-stdlib --product omnirun-agent
	mkdir -p $(dir $(AGENT))
	strip -o $(AGENT).tmp .build/release/omnirun-agent && mv $(AGENT).tmp $(AGENT)

image: deps agent ## kernel, root filesystem and initramfs of TEMPLATE (cached by input hash)
	scripts/build-image.sh --template $(TEMPLATE) --agent $(AGENT)

templates: deps agent ## every built-in template's image (heavy ones take minutes the first time; cached)
	scripts/build-templates.sh --agent $(AGENT) $(TEMPLATES)

test-images: deps agent ## the images `make test` needs: playground and TEST_TEMPLATES
	scripts/build-templates.sh --agent $(AGENT) playground $(TEST_TEMPLATES)

release:         ## the host binary, optimised
	$(SWIFT) build -c release --static-swift-stdlib --product omnirun

install:         ## omni (the CLI) and omnirun (the server), release builds, into $(PREFIX)/bin (default /usr/local/bin); the web console into $(PREFIX)/share/omnirun
	$(SWIFT) build -c release --static-swift-stdlib --product omnirun
	$(SWIFT) build -c release --static-swift-stdlib --product omni
	install -d "$(DESTDIR)$(BINDIR)"
	install -s -m 0755 .build/release/omnirun "$(DESTDIR)$(BINDIR)/omnirun"
	install -s -m 0755 .build/release/omni "$(DESTDIR)$(BINDIR)/omni"
	scripts/console-vendor.sh
	install -d "$(DESTDIR)$(PREFIX)/share/omnirun/console/vendor/xterm"
	install -m 0644 console/*.html console/*.js console/*.css "$(DESTDIR)$(PREFIX)/share/omnirun/console/"
	install -m 0644 "$${OMNIRUN_CACHE_DIR:-$$HOME/.cache/omnirun}"/console-vendor/xterm/xterm* "$(DESTDIR)$(PREFIX)/share/omnirun/console/vendor/xterm/"
	@echo "installed omni and omnirun in $(DESTDIR)$(BINDIR)"

run: image release ## install, build the guest image, start the server (prints its URL and key)
	.build/release/omnirun serve --port $(PORT) --prepare all

serve: run

exec: image release ## create a sandbox, run CMD in it, print its output, destroy it (no server)
	.build/release/omnirun run --template $(TEMPLATE) -- "$$CMD"

prepare: image release ## boot the template once and save its snapshot
	.build/release/omnirun prepare --template $(TEMPLATE)

test: test-images ## the whole suite, real VMs included (what CI runs)
	scripts/test.sh

test-all: templates ## every template built, and every template's test required
	OMNIRUN_TEST_TEMPLATES=all scripts/test.sh

bench: image release ## the benchmark suite side by side (RUNS=100 default; FULL=1 for the spec's 1,000)
	.build/release/omnirun bench --template $(TEMPLATE) --runs $${RUNS:-100} $${FULL:+--full} --json .build/bench.json

bench-agents: ## the coding agents: claude -p / codex exec round trips in and out of a sandbox, beamup to the first prompt (RUNS=5)
	$(SWIFT) build --product omnirun && $(SWIFT) build --product omni
	scripts/bench-agents.sh --runs $${RUNS:-5} --json .build/bench-agents.json

clean:
	rm -rf .build
