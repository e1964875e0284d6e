# Images: the embedded registry is tested with skopeo pushing into it; disk-image writes are
# checked with sfdisk (fdisk).
DEB_PACKAGES += skopeo
DEB_PACKAGES += fdisk
# The bootc install contract test builds its image around a static busybox.
DEB_PACKAGES += busybox-static
