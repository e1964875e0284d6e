# The deploy environment: Debian's kernel + an initramfs whose /init is slate-agent.
# `make deploy-env` builds into assets/deployenv (git-ignored); the kernel .deb is cached in
# .cache/deployenv. It rebuilds only when the agent's sources or the builder change.
# DEPLOYENV_INSTALL=/var/lib/slate/deployenv also copies the result into Slate's data directory.
DEB_PACKAGES += dpkg apt bc cpio qemu-system-x86 qemu-utils ovmf dnsmasq swtpm

DEPLOYENV_OUT ?= assets/deployenv
# Every Slate package slate-agent links (`go list -deps ./cmd/slate-agent`; the allow-list in
# internal/importrules keeps it to these) and the initramfs builder: a change to wipe/ (the
# result fields Slate checks) or image/disk must reach the initramfs too.
DEPLOYENV_SOURCES := $(shell find agent cmd/slate-agent wipe image/disk image/gpt internal/cmd/mkinitramfs -name '*.go' -not -name '*_test.go' -not -path 'wipe/cert/*' 2>/dev/null) \
	scripts/deploy-env.sh mk/deployenv.mk go.mod

.PHONY: deploy-env
deploy-env: $(DEPLOYENV_OUT)/initrd.gz

$(DEPLOYENV_OUT)/initrd.gz: $(DEPLOYENV_SOURCES)
	@DEPLOYENV_OUT=$(DEPLOYENV_OUT) scripts/deploy-env.sh

ASSET_TARGETS += deploy-env
