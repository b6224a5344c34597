# nvrd: the appliance NVR firmware. Targets a newcomer can guess.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BUILD_ID  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.buildID=$(BUILD_ID)
GOBIN     := $(shell $(GO) env GOPATH)/bin
# Tests run with a bounded time; the whole suite must stay well under CI's budget.
TESTFLAGS ?= -timeout 25m

.PHONY: all build demo test deps lint vet bench fuzz clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/nvrd ./firmware/cmd/nvrd

deps:
	./.ci/install-deps

vet:
	$(GO) vet ./...

lint: deps vet
	$(GOBIN)/staticcheck ./...

# Tests that measure real time run alone after the parallel suite: the pair's
# namespace-rig tests (TestRig*: failover timings; firmware/cluster/pairtest's
# full-pair tests with real recording, including the 2-minute lossy-link soak)
# and the recorder's end-to-end tests (real-time RTSP from the simulator and
# MediaMTX, frame counts checked against what was sent). Run in parallel with the rest
# on a 2-core machine they measure the test machine's overload. The QEMU
# system test suite (make qemu-test, about 9 minutes) runs last.
SERIAL_PKGS := ./recorder/e2etest/
test: deps lint build
	$(GO) test $(TESTFLAGS) -skip '^TestRig' $$($(GO) list ./... | grep -v '/recorder/e2etest$$')
	$(GO) test $(TESTFLAGS) -p 1 $(SERIAL_PKGS)
	$(GO) test $(TESTFLAGS) -p 1 -run '^TestRig' -skip '^TestRigDedicatedLinkSoak$$' ./firmware/cluster/...
	$(MAKE) qemu-test

demo: build
	./bin/nvrd demo --dir var

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./ringstore/...
	$(GO) test -run '^$$' -bench ExportHour -benchtime 1x -timeout 30m ./recorder/clip/

fuzz:
	./.ci/fuzz

# Recording cost against ffmpeg (-f segment, as Frigate) and MediaMTX
# (record: yes), 50 and 100 simulated 4 Mbit/s cameras, one recorder after
# another against the same simulator (recorder/benchrecord; about 10 min).
.PHONY: bench-record
bench-record:
	$(GO) run ./recorder/benchrecord -cameras 50,100 -warmup 10s -measure 30s

# out/ holds build outputs, including Go sources the image builder generates:
# its own go.mod keeps them out of ./... (go build, go vet, go test, staticcheck).
out/go.mod:
	@mkdir -p out
	@printf 'module nvr.invalid/out // build outputs: a separate module so ./... never walks them\n' > $@

clean:
	rm -rf bin var

# The firmware image (image/): Debian's kernel, a u-root initramfs with nvrd,
# image/appliance as its uinit, mdadm (Debian's, with its libraries) and the
# public key of FW_KEY as the trusted firmware key, and the signed bundle, in
# out/image. FW_KEY is created on first use (a development key; release
# builds pass their own).
FW_VERSION ?= $(shell v=$$(git describe --tags --match 'v[0-9]*' 2>/dev/null); echo $${v:-0.1.0-dev})
FW_KEY     ?= out/keys/dev.key
FW_BOARDS  ?= nvr4,nvr8,qemu

.PHONY: image qemu-smoke

image: out/go.mod
	./image/fetch-kernel.sh out/kernel
	./image/fetch-userland.sh out/userland
	@mkdir -p $(dir $(FW_KEY))
	@test -f $(FW_KEY) || $(GO) run ./firmware/cmd/nvrd firmware keygen --out $(FW_KEY)
	CGO_ENABLED=0 $(GO) run ./image/cmd/mkimage -kernel-root out/kernel/root -userland-root out/userland/root \
		-out out/image -version $(FW_VERSION) -build-id $(BUILD_ID) -key $(FW_KEY) -boards $(FW_BOARDS)

# Boots the image under QEMU (TCG): slots played by firmware/slots, then a real
# GRUB from a disk made by image/grub/mkdisk.sh.
qemu-smoke: image
	@command -v qemu-system-x86_64 >/dev/null && command -v grub-mkimage >/dev/null && \
		command -v mcopy >/dev/null && command -v mkfs.fat >/dev/null || { export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq --no-install-recommends qemu-system-x86 grub-common grub-pc-bin mtools dosfstools >/dev/null; }
	NVR_QEMU_SMOKE=1 $(GO) test -count=1 -run 'TestQEMUSmoke|TestGRUB|TestGrub|TestImageContents' -v -timeout 20m ./image/

# The pair's dedicated-link soak with real recording (firmware/cluster/pairtest:
# nvrd run on both nodes, 4 simulated cameras): 50 % loss and 100 ± 50 ms delay
# both ways for 10 minutes in network namespaces (root; make test runs the
# 2-minute version). Zero false failovers, bounded mirror lag and continuous
# footage on both nodes are the pass mark. The roles-only soak without
# recording (firmware/cluster TestRigDedicatedLinkSoak) runs with
# NVR_SOAK_MINUTES set by hand.
.PHONY: soak

soak: deps
	NVR_SOAK_MINUTES=10 $(GO) test -count=1 -run 'TestRigPairDedicatedLinkSoak' -v -timeout 20m ./firmware/cluster/pairtest/

# The QEMU system test suite (image/qemutest): boots the image and drives it
# through the serial console, the API and QMP (console + recording + export,
# PMBus PSU fault on i2c-stub, drive bay on gpio-sim, RAID1 disk removal,
# watchdog reset, signed A/B upgrade with rollback, power cut during install).
# About 9 minutes on 2 cores, make image and a cold gpio-sim build included;
# guests run one at a time. gpio-sim is built from Debian's
# linux-source/headers of the image's kernel (downloaded by the test, cached
# in out/image/qemutest/cache). The last step of make test.
.PHONY: qemu-test
qemu-test: image
	@command -v qemu-system-x86_64 >/dev/null && command -v mkfs.ext4 >/dev/null && command -v debugfs >/dev/null && \
		command -v ffprobe >/dev/null && command -v gcc >/dev/null && command -v make >/dev/null && command -v xz >/dev/null || \
		{ export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; \
		apt-get install -y -qq --no-install-recommends qemu-system-x86 e2fsprogs ffmpeg gcc make xz-utils libc6-dev >/dev/null; }
	NVR_QEMU_TEST=1 $(GO) test -count=1 -v -timeout 40m ./image/qemutest/
