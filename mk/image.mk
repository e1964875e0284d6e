# Images: the embedded registry is tested with skopeo pushing into it.
DEB_PACKAGES += skopeo
