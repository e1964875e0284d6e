# Foundation: the UI is tested in headless Chromium.
DEB_PACKAGES += chromium
