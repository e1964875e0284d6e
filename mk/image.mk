# Images: the embedded registry is tested with skopeo and podman pushing into it; disk-image writes are
# checked with sfdisk (fdisk).
DEB_PACKAGES += skopeo podman
DEB_PACKAGES += fdisk
# The bootc install contract test builds its image around a static busybox.
DEB_PACKAGES += busybox-static
# The lab's bootable test disk image (scripts/mktestimage.sh): syslinux for BIOS, systemd-boot
# for UEFI, a FAT ESP built with mtools, no loop device and no mount.
DEB_PACKAGES += syslinux syslinux-common systemd-boot-efi mtools dosfstools
