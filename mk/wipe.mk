# wipe/: NIST SP 800-88 sanitization. util-linux gives losetup (loop-device tests and bench);
# nwipe is the bench peer; nvme-cli, hdparm, sg3-utils, gcc re-create the byte-exact captures
# in wipe/testdata (wipe-captures); qemu-system-x86, busybox-static and dpkg run the QEMU
# decommission test (Debian kernel package cached in /var/cache/slate-test).
DEB_PACKAGES += util-linux e2fsprogs nwipe nvme-cli hdparm sg3-utils gcc libc6-dev \
	qemu-system-x86 busybox-static dpkg apt gzip
# poppler-utils: pdftotext/pdfinfo read the certificate PDFs and the auditor's batch report
# back in tests (they must render, not only start with %PDF).
DEB_PACKAGES += poppler-utils

.PHONY: wipe-captures wipe-test
# Re-capture what nvme-cli/hdparm/sg3_utils send (root; touches no drive: see the script).
wipe-captures:
	bash wipe/testdata/capture/capture.sh

wipe-test:
	$(GO) test -count=1 -timeout 5m ./wipe/... ./cmd/slate/
