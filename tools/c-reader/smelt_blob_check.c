/*
 * smelt_blob_check: lists a smelt blob's tensors and verifies their CRCs with the C reader.
 *
 *   smelt_blob_check FILE
 *
 * Prints one line per tensor on stdout, tab-separated:
 *   name  scheme  dtype  [dims]  codec  stored-bytes  OK|BAD
 * and on stderr a line for the metadata section, or the reason a file is refused:
 *   malformed: <BlobError variant> at byte <offset> (tensor <index>)
 * Exit status: 0 when every CRC matches, 1 when one does not, 2 when the file is malformed,
 * 3 when it cannot be read or the arguments are wrong.
 */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smelt_blob.h"

int main(int argc, char **argv) {
    static const uint8_t empty[1] = {0};
    const uint8_t *buf = empty;
    size_t len = 0;
    struct stat st;
    smelt_blob blob;
    smelt_blob_error err;
    smelt_blob_tensor t;
    uint32_t i;
    int fd, status = 0;
    unsigned d;

    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE.smelt\n", argv[0]);
        return 3;
    }
    fd = open(argv[1], O_RDONLY);
    if (fd < 0 || fstat(fd, &st) != 0) {
        perror(argv[1]);
        return 3;
    }
    if (st.st_size > 0) {
        void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            perror(argv[1]);
            return 3;
        }
        buf = (const uint8_t *)map;
        len = (size_t)st.st_size;
    }
    close(fd);

    if (smelt_blob_open(&blob, buf, len, &err) != SMELT_BLOB_OK) {
        fprintf(stderr, "malformed: %s at byte %llu", smelt_blob_status_name(err.status),
                (unsigned long long)err.offset);
        if (err.tensor != UINT32_MAX) fprintf(stderr, " (tensor %lu)", (unsigned long)err.tensor);
        fprintf(stderr, "\n");
        return 2;
    }
    for (i = 0; i < blob.tensor_count; i++) {
        int ok;
        smelt_blob_tensor_at(&blob, i, &t);
        ok = smelt_blob_verify_tensor(&t);
        if (!ok) status = 1;
        printf("%.*s\t%s\t%s\t[", (int)t.name_len, t.name, smelt_blob_scheme_name(t.scheme),
               smelt_blob_dtype_name(t.dtype));
        for (d = 0; d < t.rank; d++) printf(d ? ",%llu" : "%llu", (unsigned long long)t.dims[d]);
        printf("]\t%s\t%llu\t%s\n", smelt_blob_codec_name(t.codec),
               (unsigned long long)(t.data.len + t.scales.len + t.zeros.len + t.aux.len), ok ? "OK" : "BAD");
    }
    if (blob.meta_size) {
        int ok = smelt_blob_verify_metadata(&blob);
        if (!ok) status = 1;
        fprintf(stderr, "metadata: %llu bytes at %llu, crc %s\n", (unsigned long long)blob.meta_size,
                (unsigned long long)blob.meta_offset, ok ? "OK" : "BAD");
    }
    return status;
}
