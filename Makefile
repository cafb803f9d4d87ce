# cfaccess: build, test and demo. Every path and flag can be overridden:
#   make LUA=lua5.4 PKG_CONFIG=pkg-config CC=clang O=build/x
LUA_VERSION ?= 5.4
LUA         ?= lua$(LUA_VERSION)
BUSTED      ?= busted
PYTHON      ?= python3
PKG_CONFIG  ?= pkg-config
LUA_PC      ?= lua$(LUA_VERSION)
LUA_CFLAGS  ?= $(shell $(PKG_CONFIG) --cflags $(LUA_PC) 2>/dev/null)
CURL_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags libcurl 2>/dev/null)
CURL_LIBS   ?= $(shell $(PKG_CONFIG) --libs libcurl 2>/dev/null || echo -lcurl)
CC          ?= cc
CFLAGS      ?= -O2 -g
LDFLAGS     ?=
WERROR      ?=
WARN        := -std=c99 -Wall -Wextra -pedantic -Wshadow -Wmissing-prototypes \
               -Wstrict-prototypes $(WERROR)
ALL_CFLAGS  := $(CFLAGS) $(WARN) -fPIC -fvisibility=hidden \
               -D_POSIX_C_SOURCE=200809L $(LUA_CFLAGS) $(CURL_CFLAGS)
# Output directory: `cfaccess/core.so` lands under it (sanitizer builds use
# their own so they never mix objects with the normal build).
O           ?= .
SO          := $(O)/cfaccess/core.so
SRCS        := $(sort $(wildcard src/*.c))
OBJS        := $(patsubst src/%.c,$(O)/obj/%.o,$(SRCS))
HDRS        := $(wildcard src/*.h)

.PHONY: all deps test test-only asan valgrind lint demo mock bench bench-instr bench-scale \
        bench-ratelimit bench-peers clean luarocks-check install install-lib install-bin luarocks-install

all: $(SO)

$(O)/obj/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(SO): $(OBJS)
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS) -o $@ $(OBJS) $(CURL_LIBS)

# Install the Debian packages the project needs (only the missing ones).
deps:
	@sh tests/deps.sh

# The README's test command: installs what is missing, builds, runs every spec.
test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory test-only

test-only:
	@O=$(O) LUA=$(LUA) BUSTED=$(BUSTED) sh tests/run.sh

# The suite once more with AddressSanitizer + UBSan (its own build dir).
ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
asan:
	@$(MAKE) --no-print-directory O=build/asan CFLAGS="$(ASAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined" all
	@LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  O=build/asan LUA=$(LUA) BUSTED=$(BUSTED) sh tests/run.sh

# The suite under valgrind memcheck: zero errors and no definite leaks.
valgrind:
	@$(MAKE) --no-print-directory O=build/valgrind CFLAGS="-O0 -g" all
	@CFACCESS_VALGRIND=1 O=build/valgrind LUA=$(LUA) BUSTED=$(BUSTED) sh tests/run.sh

lint:
	luacheck lua tests examples bench

# The main job: build, start the local mock API, run the quickstart against it.
demo: deps
	@$(MAKE) --no-print-directory all
	@sh examples/demo.sh

# Start the mock Cloudflare API in the foreground (PORT=0 picks a free one).
PORT ?= 8787
mock:
	$(PYTHON) tests/mock/cfmock.py --port $(PORT)

bench: deps
	@$(MAKE) --no-print-directory all
	@sh bench/run.sh

# Userland instructions per request, client vs the honest floors (libcurl +
# lua-cjson decoding, bench/hfloor.c) and the bare C floors (valgrind; the
# same on every run, where req/s moves with whatever else shares the machine).
bench-instr: deps
	@$(MAKE) --no-print-directory all
	@sh bench/run.sh instr

# The scale rows alone (encode cost per rule, listing 1/100/1000 policies).
bench-scale: deps
	@$(MAKE) --no-print-directory all
	@sh bench/run.sh scale

# Cloudflare's budget and lockout, scaled, on loopback (bench/ratelimit.sh;
# about 4.5 minutes with the defaults, RL_* knobs in that file).
bench-ratelimit: deps
	@$(MAKE) --no-print-directory all
	@sh bench/ratelimit.sh

# The official TypeScript SDK (npm `cloudflare`, installed into a temporary
# directory) next to the client; skipped with a message without npm.
bench-peers: deps
	@$(MAKE) --no-print-directory all
	@sh bench/run.sh peers

# `luarocks make` into a throwaway tree, then run `cfaccess --version` and
# `cfaccess validate` and require the module from that tree.
luarocks-check: all
	@sh tests/luarocks_check.sh

# ---- install: the core, the Lua modules and the command -------------------
#   make install PREFIX=/usr/local DESTDIR=/tmp/stage
# LUADIR, LIBDIR and BINDIR can be set on their own (LuaRocks does).
PREFIX  ?= /usr/local
DESTDIR ?=
LUADIR  ?= $(PREFIX)/share/lua/$(LUA_VERSION)
LIBDIR  ?= $(PREFIX)/lib/lua/$(LUA_VERSION)
BINDIR  ?= $(PREFIX)/bin
LUA_MODULES := $(sort $(shell cd lua && find cfaccess -name '*.lua'))

install: install-lib install-bin

install-lib: $(SO)
	install -d "$(DESTDIR)$(LIBDIR)/cfaccess"
	install -m 755 $(SO) "$(DESTDIR)$(LIBDIR)/cfaccess/core.so"
	@for f in $(LUA_MODULES); do \
	  install -d "$(DESTDIR)$(LUADIR)/$$(dirname $$f)" && \
	  install -m 644 "lua/$$f" "$(DESTDIR)$(LUADIR)/$$f" || exit 1; \
	  echo "install lua/$$f $(DESTDIR)$(LUADIR)/$$f"; \
	done

install-bin:
	install -d "$(DESTDIR)$(BINDIR)"
	install -m 755 bin/cfaccess "$(DESTDIR)$(BINDIR)/cfaccess"

# The rockspec's install step (build.type "make"): the library parts (the
# command is build.install.bin), then the build directory goes, so that
# `luarocks make` leaves the checkout as it found it.
luarocks-install: install-lib
	rm -rf "$(O)"
	-rmdir build 2>/dev/null

clean:
	rm -rf cfaccess/core.so obj build

# ---- hardening (issue 4): static library, embedding hosts, fuzzing --------
# All additive. `objs` builds the object files for the O/CC/CFLAGS given, so
# the targets below can build sanitizer variants in their own directories.
.PHONY: objs static embed fuzz fuzz-build fuzz-long tsan resource

objs: $(OBJS)

# libcfaccess.a for hosts that link the core statically; the only public
# declaration is src/lcfaccess.h (luaopen_cfaccess_core).
LIBA := $(O)/libcfaccess.a
static: $(LIBA)
$(LIBA): $(OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $(OBJS)

LUA_LIBS   ?= $(shell $(PKG_CONFIG) --libs $(LUA_PC) 2>/dev/null || echo -llua$(LUA_VERSION))
EMBED_O    := build/embed
EMBED_CFLAGS := -std=c99 -O1 -g -Wall -Wextra -pedantic -Wshadow -Wmissing-prototypes \
                -Wstrict-prototypes -Werror -D_POSIX_C_SOURCE=200809L -Isrc $(LUA_CFLAGS)
TSAN_CC    ?= clang-14

# Build and run the embedding hosts: host (static core + luaL_requiref) runs
# tests/embed/*.lua; threads runs 4 lua_States on 4 pthreads under TSan.
embed:
	@$(MAKE) --no-print-directory O=$(EMBED_O) CFLAGS="-O1 -g" static
	@mkdir -p $(EMBED_O)
	$(CC) $(EMBED_CFLAGS) -o $(EMBED_O)/host tests/embed/host.c $(EMBED_O)/libcfaccess.a $(LUA_LIBS) $(CURL_LIBS) -lm -ldl
	@$(MAKE) --no-print-directory tsan
	@sh tests/embed/run.sh $(EMBED_O)/host build/tsan/threads

tsan:
	@$(MAKE) --no-print-directory O=build/tsan CC=$(TSAN_CC) CFLAGS="-O1 -g -fsanitize=thread" static
	$(TSAN_CC) $(EMBED_CFLAGS) -fsanitize=thread -o build/tsan/threads tests/embed/threads.c build/tsan/libcfaccess.a $(LUA_LIBS) $(CURL_LIBS) -lpthread -lm -ldl

# libFuzzer harnesses (tests/fuzz/fuzz_*.c) under ASan+UBSan, each run for
# FUZZ_SECONDS on a scratch copy of its committed seed corpus, after replaying
# tests/fuzz/regress/. Then the differential oracle over the grown corpus.
FUZZ_CC      ?= clang-14
FUZZ_SECONDS ?= 60
FUZZ_O       := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_NAMES   := $(basename $(notdir $(wildcard tests/fuzz/fuzz_*.c)))
fuzz-build:
	@$(MAKE) --no-print-directory O=$(FUZZ_O) CC=$(FUZZ_CC) CFLAGS="-O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link" objs
	@mkdir -p $(FUZZ_O)/bin
	@for h in $(FUZZ_NAMES); do \
	  echo "fuzz: building $$h"; \
	  $(FUZZ_CC) -O1 -g $(WARN) -D_POSIX_C_SOURCE=200809L $(FUZZ_SAN) -fsanitize=fuzzer -Isrc $(LUA_CFLAGS) $(CURL_CFLAGS) \
	    -o $(FUZZ_O)/bin/$$h tests/fuzz/$$h.c $(patsubst src/%.c,$(FUZZ_O)/obj/%.o,$(SRCS)) \
	    $(LUA_LIBS) $(CURL_LIBS) -lm -ldl || exit 1; \
	done
	$(FUZZ_CC) -O1 -g $(WARN) -D_POSIX_C_SOURCE=200809L $(FUZZ_SAN) -Isrc $(LUA_CFLAGS) -o $(FUZZ_O)/bin/formats_cli tests/fuzz/formats_cli.c \
	  $(patsubst src/%.c,$(FUZZ_O)/obj/%.o,$(SRCS)) $(LUA_LIBS) $(CURL_LIBS) -lm -ldl

fuzz: fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_O=$(FUZZ_O) PYTHON=$(PYTHON) sh tests/fuzz/run.sh $(FUZZ_NAMES)

fuzz-long:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=600

# 100,000 encodes and 20,000 mock requests in one process, RSS printed.
resource: all
	@O=. LUA=$(LUA) BUSTED=$(BUSTED) CFACCESS_RESOURCE=1 sh tests/run.sh --pattern=resource_spec
