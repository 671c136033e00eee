# mod_k2notify: build with apxs, test against a real Apache and SQLite.
#
#   make          build/mod_k2notify.so
#   make run      a demo server on 127.0.0.1:$(PORT) (make stop ends it)
#   make test     unit tests, then integration tests through a real httpd
#   make bench    wrk against a real httpd: the table of issue 4 (~2 min)
#   make profile  what one request costs the httpd child: CPU, context
#                 switches, system calls by cause (perf, strace; as root)
#   make fuzz     libFuzzer on the pure parts, FUZZ_SECONDS=60 per target
#   make test-asan  the integration tests with an ASan+UBSan module
#   make install  copy the module into Apache's module directory
#   make deb      build/libapache2-mod-k2notify_VERSION_ARCH.deb (debian/)
#   make test-system  as root: install the .deb into the system apache2 and
#                 run it over HTTPS (restores the system's configuration)

APXS     ?= apxs
CC       ?= gcc
PYTHON   ?= /usr/bin/python3
PORT     ?= 8080
DEMO_DIR ?= /tmp/k2notify-demo

WARN     = -Wall -Wextra -Werror
SRC_DIR  = mod_k2notify
SOURCES  = $(wildcard $(SRC_DIR)/*.c)
HEADERS  = $(wildcard $(SRC_DIR)/*.h)
PURE     = $(wildcard $(SRC_DIR)/k2_*.c)
MODULE   = build/mod_k2notify.so

# The version lives in one place, the first line of debian/changelog:
# "libapache2-mod-k2notify (0.3.0) unstable; ...".  The module logs it.
VERSION  := $(shell sed -n '1s/^[^ ]* .\([0-9A-Za-z.+~:-]*\).*/\1/p' debian/changelog)
DEFINES  = -DK2N_VERSION=\\\"$(VERSION)\\\"

.PHONY: all deps test unit integration bench profile run stop install clean fuzz \
	test-asan deb test-system

all: $(MODULE)

# apxs/libtool write their objects beside the sources: build from links in
# build/obj so that the source tree stays clean.
$(MODULE): $(SOURCES) $(HEADERS) debian/changelog
	@tools/deps.sh build
	@mkdir -p build/obj
	@for f in $(SOURCES) $(HEADERS); do ln -sf ../../$$f build/obj/; done
	cd build/obj && $(APXS) -c -o ../mod_k2notify.la \
		$(addprefix -Wc$(,),$(WARN) $(DEFINES) $(CPPFLAGS) $(CFLAGS)) \
		$(addprefix -Wl$(,),$(LDFLAGS)) \
		-ljansson -lcrypto -lsqlite3 $(notdir $(SOURCES))
	# A new inode: a running httpd keeps mapping the old file.
	cp build/.libs/mod_k2notify.so $@.tmp && mv -f $@.tmp $@

, := ,

deps:
	@tools/deps.sh all

# Every tests/unit/*.c is linked into one binary (each test file registers
# its suite: tests/unit/unit.h).  The pure parts use APR, not httpd.
UNIT_SRCS = $(wildcard tests/unit/*.c)
APR_FLAGS = $$(apr-1-config --cflags --cppflags --includes)
APR_LIBS  = $$(apr-1-config --link-ld --libs)

build/test_k2: $(UNIT_SRCS) tests/unit/unit.h $(PURE) $(wildcard $(SRC_DIR)/k2_*.h)
	@tools/deps.sh build
	@mkdir -p build
	$(CC) $(WARN) -g -O1 -I$(SRC_DIR) -Itests/unit $(APR_FLAGS) -o $@ \
		$(UNIT_SRCS) $(PURE) -ljansson -lcrypto $(APR_LIBS)

unit: build/test_k2
	build/test_k2

integration: $(MODULE)
	@tools/deps.sh test
	$(PYTHON) -m pytest -q tests/integration $(PYTEST_ARGS)

test: unit integration

bench: $(MODULE)
	@tools/deps.sh bench
	$(PYTHON) bench/bench.py

profile: $(MODULE)
	@tools/deps.sh profile
	$(PYTHON) bench/profile.py --strace $(PROFILE_ARGS)

run: $(MODULE)
	@tools/deps.sh run
	@tools/demo.sh start $(DEMO_DIR) $(PORT)

stop:
	@tools/demo.sh stop $(DEMO_DIR) $(PORT)

# libFuzzer targets of the pure parts (fuzz/fuzz_*.c), linked with every
# pure part (some use APR: the group-commit queue).  Seeds in
# fuzz/corpus/TARGET; what a run finds stays in build/fuzz (fuzz/run.sh).
FUZZ_CC      ?= clang-14
FUZZ_SECONDS ?= 60
FUZZ_FLAGS    = -g -O1 -fno-omit-frame-pointer \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_TARGETS  = $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))

build/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_common.h $(PURE) \
		$(wildcard $(SRC_DIR)/k2_*.h)
	@tools/deps.sh fuzz
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(WARN) $(FUZZ_FLAGS) -I$(SRC_DIR) $(APR_FLAGS) -o $@ $< $(PURE) \
		-ljansson -lcrypto $(APR_LIBS)

fuzz: $(addprefix build/fuzz/fuzz_,$(FUZZ_TARGETS))
	fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The module with ASan and UBSan (gcc's, as apxs links with gcc), and the
# integration suite against it: LD_PRELOAD and the sanitizer options go to
# the apache2 processes only (K2NOTIFY_HTTPD_ENV, see conftest.py); any
# sanitizer report fails the teardown of the test that started the server.
ASAN_MODULE = build/asan/mod_k2notify.so
ASAN_FLAGS  = -fsanitize=address,undefined -fno-omit-frame-pointer
ASAN_ENV    = LD_PRELOAD=$$(gcc -print-file-name=libasan.so) \
	ASAN_OPTIONS=log_path={logdir}/asan,detect_leaks=0,abort_on_error=0 \
	UBSAN_OPTIONS=print_stacktrace=1,halt_on_error=0

$(ASAN_MODULE): $(SOURCES) $(HEADERS) debian/changelog
	@tools/deps.sh build
	@mkdir -p build/asan/obj
	@for f in $(SOURCES) $(HEADERS); do ln -sf ../../../$$f build/asan/obj/; done
	cd build/asan/obj && $(APXS) -c -o ../mod_k2notify.la \
		$(addprefix -Wc$(,),$(WARN) $(DEFINES) $(ASAN_FLAGS) -O1) \
		$(addprefix -Wl$(,),$(ASAN_FLAGS)) \
		-ljansson -lcrypto -lsqlite3 $(notdir $(SOURCES))
	cp build/asan/.libs/mod_k2notify.so $@.tmp && mv -f $@.tmp $@

test-asan: $(ASAN_MODULE)
	@tools/deps.sh test
	K2NOTIFY_MODULE=$(abspath $(ASAN_MODULE)) \
	K2NOTIFY_HTTPD_ENV="$(ASAN_ENV)" \
		$(PYTHON) -m pytest -q tests/integration $(PYTEST_ARGS)

install: $(MODULE)
	$(APXS) -i -n k2notify $(MODULE)

# The Debian package, built by dpkg-buildpackage from debian/ in a copy of
# the tree (build/deb/src): dpkg-buildpackage writes beside the tree it
# builds, so the checkout and its parent stay clean.  lintian then reports
# on it: an error fails the build, docs/install.md explains each warning left.
DEB_ARCH = $$(dpkg --print-architecture)
DEB_NAME = libapache2-mod-k2notify_$(VERSION)_$(DEB_ARCH).deb
DEB_SRC  = $(SOURCES) $(HEADERS) Makefile README.md $(wildcard docs/*.md) tools/deps.sh \
	$(wildcard debian/* debian/source/* conf-samples/* conf-samples/*/*/*)

deb: build/deb/stamp

build/deb/stamp: $(DEB_SRC)
	@tools/deps.sh deb
	rm -rf build/deb && mkdir -p build/deb/src
	tar -c --exclude=./build --exclude=./.git --exclude=__pycache__ \
		--exclude=.pytest_cache . | tar -x -C build/deb/src
	cd build/deb/src && dpkg-buildpackage --build=binary --no-sign
	cp build/deb/$(DEB_NAME) build/
	lintian --fail-on error build/$(DEB_NAME)
	@ls -l build/$(DEB_NAME)
	@touch $@

# As root, on a machine whose system apache2 may be reconfigured: installs
# the .deb, runs the HTTPS sample as docs/install.md says, purges it, and
# restores what it changed (tests/system/test_system.py).
test-system: deb
	@tools/deps.sh system
	$(PYTHON) -m pytest -q tests/system $(PYTEST_ARGS)

clean:
	rm -rf build
