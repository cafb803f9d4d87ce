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

.PHONY: all deps test test-only asan valgrind lint demo mock bench clean luarocks-check

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

# `luarocks make` into a throwaway tree, then require it from that tree.
luarocks-check: all
	@sh tests/luarocks_check.sh

clean:
	rm -rf cfaccess/core.so obj build
