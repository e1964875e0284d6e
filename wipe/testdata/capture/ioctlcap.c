/* ioctlcap: an LD_PRELOAD shim that records the NVMe admin passthrough structs and SG_IO CDBs
 * that nvme-cli, hdparm and sg3_utils hand to the kernel, and answers them with "success, all
 * zero data" so the tools go on to the command we want without a real drive. Used once to make
 * wipe/testdata/*.capture; see capture.sh. Pointer fields are zeroed in the log (they differ per
 * run) and noted as addr=1 when the tool passed a buffer. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <scsi/sg.h>

#define NVME_IOCTL_ID 0x4E40UL
#define NVME_IOCTL_ADMIN_CMD 0xC0484E41UL
#define NVME_IOCTL_ADMIN64_CMD 0xC0504E47UL

static void out(const char *kind, const unsigned char *b, size_t n, const char *extra) {
	const char *path = getenv("CAPTURE_OUT");
	FILE *f = path ? fopen(path, "a") : stderr;
	if (!f) return;
	fprintf(f, "%s", kind);
	if (extra) fprintf(f, " %s", extra);
	fprintf(f, " ");
	for (size_t i = 0; i < n; i++) fprintf(f, "%02x", b[i]);
	fprintf(f, "\n");
	if (path) fclose(f);
}

int ioctl(int fd, unsigned long req, ...) {
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (req == NVME_IOCTL_ID) return 1;
	if (req == NVME_IOCTL_ADMIN_CMD || req == NVME_IOCTL_ADMIN64_CMD) {
		size_t n = req == NVME_IOCTL_ADMIN_CMD ? 72 : 80;
		unsigned char b[80];
		memcpy(b, arg, n);
		uint64_t addr, meta;
		memcpy(&meta, b + 16, 8);
		memcpy(&addr, b + 24, 8);
		memset(b + 16, 0, 16);
		char extra[64];
		snprintf(extra, sizeof extra, "meta=%d addr=%d", meta != 0, addr != 0);
		out(n == 72 ? "nvme-admin" : "nvme-admin64", b, n, extra);
		/* all-zero completion, all-zero data: the tools read that as "success" */
		uint32_t dlen;
		memcpy(&dlen, b + 36, 4);
		if (addr && dlen) memset((void *)(uintptr_t)addr, 0, dlen);
		return 0;
	}
	if (req == SG_IO) {
		struct sg_io_hdr *h = arg;
		char extra[320];
		snprintf(extra, sizeof extra, "dir=%d dxfer_len=%u timeout=%u mx_sb_len=%u", h->dxfer_direction,
			 h->dxfer_len, h->timeout, h->mx_sb_len);
		if (h->dxferp && h->dxfer_len && h->dxfer_direction == SG_DXFER_TO_DEV) {
			size_t n = h->dxfer_len < 48 ? h->dxfer_len : 48;
			char *e = extra + strlen(extra);
			e += sprintf(e, " data=");
			for (size_t i = 0; i < n && e < extra + sizeof extra - 3; i++)
				e += sprintf(e, "%02x", ((unsigned char *)h->dxferp)[i]);
		}
		out("sgio", h->cmdp, h->cmd_len, extra);
		if (h->dxferp && h->dxfer_len && h->dxfer_direction == SG_DXFER_FROM_DEV) {
			unsigned char *d = h->dxferp;
			memset(d, 0, h->dxfer_len);
			const unsigned char *c = h->cmdp;
			/* ATA IDENTIFY: claim the SANITIZE feature set with all three sub-commands
			 * (word 59 bits 12-15) and the Security feature set with enhanced erase
			 * (words 82, 128), so hdparm goes on to send the command under test. */
			if (c[0] == 0x85 && c[14] == 0xec && h->dxfer_len >= 512) {
				d[59 * 2 + 1] = 0xf0;
				d[82 * 2] = 0x02;
				d[128 * 2] = 0x21;
			}
			/* INQUIRY: a 36-byte standard answer, direct-access device, SPC-4. */
			if (c[0] == 0x12 && h->dxfer_len >= 36) {
				d[2] = 6;
				d[3] = 2;
				d[4] = 31;
			}
		}
		h->status = 0; h->masked_status = 0; h->host_status = 0; h->driver_status = 0;
		h->sb_len_wr = 0; h->resid = 0; h->info = 0;
		return 0;
	}
	int (*real)(int, unsigned long, void *) = dlsym(RTLD_NEXT, "ioctl");
	return real(fd, req, arg);
}
