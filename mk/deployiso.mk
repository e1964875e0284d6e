# The deploy environment as a hybrid BIOS+UEFI ISO, for machines booted through their BMC's
# virtual media where the segment cannot network-boot (docs/netboot.md). Built from the deploy
# kernel and initrd into $(DEPLOYENV_OUT)/deploy.iso; Slate serves it at /boot/deploy/deploy.iso
# with its URL patched in. DEPLOYENV_INSTALL=/var/lib/slate/deployenv also copies it there.
DEB_PACKAGES += grub-common grub-pc-bin grub-efi-amd64-bin xorriso mtools bc

.PHONY: deploy-iso
deploy-iso: $(DEPLOYENV_OUT)/deploy.iso

$(DEPLOYENV_OUT)/deploy.iso: $(DEPLOYENV_OUT)/initrd.gz scripts/deploy-iso.sh mk/deployiso.mk
	@DEPLOYENV_OUT=$(DEPLOYENV_OUT) scripts/deploy-iso.sh

ASSET_TARGETS += deploy-iso
