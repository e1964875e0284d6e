# Network boot (pxe/, assets/): iPXE binaries embedded into Slate, and the peers the tests and
# benchmarks compare against (tftp-hpa, tftpd-hpa, dnsmasq, nginx) and boot with (QEMU, OVMF).
DEB_PACKAGES += ipxe ipxe-qemu tftp-hpa tftpd-hpa dnsmasq nginx-light qemu-system-x86 ovmf busybox-static cpio bc gzip tar dpkg apt

IPXE_SRC ?= /usr/lib/ipxe
IPXE_DST := assets/ipxe
# Required x86-64 binaries, then the optional arm64 one (newer Debian ipxe packages ship it).
IPXE_REQUIRED := undionly.kpxe ipxe.efi snponly.efi
IPXE_OPTIONAL := ipxe-arm64.efi

ASSET_TARGETS += ipxe-assets

.PHONY: ipxe-assets
ipxe-assets:
	@for f in $(IPXE_REQUIRED); do \
	  if [ ! -e "$(IPXE_SRC)/$$f" ]; then \
	    echo "ipxe-assets: $(IPXE_SRC)/$$f is missing: install Debian's ipxe package (make deps)" >&2; exit 1; \
	  fi; \
	done
	@mkdir -p $(IPXE_DST)
	@# -L: Debian's ipxe.efi is a symlink into /boot. Copy only when changed, so go's build cache holds.
	@for f in $(IPXE_REQUIRED) $(IPXE_OPTIONAL); do \
	  [ -e "$(IPXE_SRC)/$$f" ] || continue; \
	  cmp -s "$(IPXE_SRC)/$$f" "$(IPXE_DST)/$$f" || cp -L "$(IPXE_SRC)/$$f" "$(IPXE_DST)/$$f"; \
	done
