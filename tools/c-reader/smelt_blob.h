/*
 * smelt_blob.h: a reader for smelt blobs (docs/blob-format.md, format version 1.x) small enough
 * for a microcontroller: C99, no allocation, nothing from libc but memcmp. The caller provides
 * the whole file (read into memory or mapped); the reader validates the header and the whole
 * directory exactly as the spec's "Reader obligations" say, then hands out tensors whose
 * section pointers point into the caller's buffer. It does not decompress and does not decode
 * the protobuf metadata; it verifies CRCs on request.
 *
 * Every check is the one smelt's Rust reader makes, in the same order, and a failure names the
 * same error (smelt_blob_status_name gives the Rust `BlobError` variant's name) at the same
 * byte offset. One check is left out: duplicate tensor names (see README.md).
 */
#ifndef SMELT_BLOB_H
#define SMELT_BLOB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SMELT_BLOB_HEADER_SIZE 128u
#define SMELT_BLOB_ENTRY_SIZE 176u
#define SMELT_BLOB_ALIGN 64u
#define SMELT_BLOB_MAX_RANK 8u
#define SMELT_BLOB_MAX_TENSORS (1ul << 20)
#define SMELT_BLOB_MAX_NAME_LEN 4096u
#define SMELT_BLOB_NO_AXIS 0xFFFFFFFFu

/* Schemes, codecs and entry flags (the spec's tables). */
enum { SMELT_BLOB_RAW, SMELT_BLOB_INT8, SMELT_BLOB_NF4, SMELT_BLOB_INT4,
       SMELT_BLOB_TERNARY2, SMELT_BLOB_TERNARY3, SMELT_BLOB_GGML };
enum { SMELT_BLOB_CODEC_NONE, SMELT_BLOB_CODEC_ZSTD, SMELT_BLOB_CODEC_LZ4 };
#define SMELT_BLOB_FLAG_SYMMETRIC 1u
#define SMELT_BLOB_FLAG_PER_AXIS 2u
#define SMELT_BLOB_FLAG_DOUBLE_QUANT 4u

/* Why a blob was refused; names match smelt's `BlobError` variants. */
typedef enum {
    SMELT_BLOB_OK = 0,
    SMELT_BLOB_FILE_TOO_SHORT,
    SMELT_BLOB_BAD_MAGIC,
    SMELT_BLOB_UNSUPPORTED_VERSION,
    SMELT_BLOB_HEADER_CHECKSUM,
    SMELT_BLOB_HEADER_FIELD_VALUE,
    SMELT_BLOB_FILE_SIZE_MISMATCH,
    SMELT_BLOB_RESERVED_NOT_ZERO,
    SMELT_BLOB_TOO_MANY_TENSORS,
    SMELT_BLOB_METADATA_PRESENCE,
    SMELT_BLOB_MISALIGNED,
    SMELT_BLOB_REGION_OUT_OF_BOUNDS,
    SMELT_BLOB_DIRECTORY_CHECKSUM,
    SMELT_BLOB_NAME_NOT_PACKED,
    SMELT_BLOB_NAME_OUT_OF_BOUNDS,
    SMELT_BLOB_EMPTY_NAME,
    SMELT_BLOB_NAME_TOO_LONG,
    SMELT_BLOB_NAME_NOT_UTF8,
    SMELT_BLOB_RANK_TOO_LARGE,
    SMELT_BLOB_UNUSED_DIM_NOT_ZERO,
    SMELT_BLOB_UNKNOWN_SCHEME,
    SMELT_BLOB_UNKNOWN_DTYPE,
    SMELT_BLOB_UNKNOWN_CODEC,
    SMELT_BLOB_COMPRESSED_IN_UNCOMPRESSED_FILE,
    SMELT_BLOB_DTYPE_NOT_ALLOWED,
    SMELT_BLOB_RANK_NOT_ALLOWED,
    SMELT_BLOB_FLAGS_NOT_ALLOWED,
    SMELT_BLOB_BAD_BLOCK_SIZE,
    SMELT_BLOB_BAD_AXIS,
    SMELT_BLOB_SIZE_OVERFLOW,
    SMELT_BLOB_ROW_NOT_WHOLE_BLOCKS,
    SMELT_BLOB_SECTION_LENGTH,
    SMELT_BLOB_STORED_LENGTH_MISMATCH,
    SMELT_BLOB_IMPOSSIBLE_RAW_LENGTH,
    SMELT_BLOB_ABSENT_SECTION_OFFSET,
    SMELT_BLOB_SECTION_OUT_OF_BOUNDS,
    SMELT_BLOB_SECTION_OUT_OF_ORDER,
    SMELT_BLOB_GROUP_INDEX_OUT_OF_RANGE,
    SMELT_BLOB_BAD_ARGUMENT
} smelt_blob_status;

/* Where validation failed. */
typedef struct {
    smelt_blob_status status;
    uint32_t tensor; /* index of the directory entry concerned, UINT32_MAX for the header */
    uint64_t offset; /* absolute byte offset of the offending field or bytes */
} smelt_blob_error;

/* An opened, validated blob: a view of the caller's buffer, which must outlive it. */
typedef struct {
    const uint8_t *base;
    uint64_t size;
    uint16_t version_major, version_minor;
    uint32_t tensor_count;
    uint64_t strtab_offset, strtab_size;
    uint64_t meta_offset, meta_size;
    uint64_t data_offset, flags;
    uint32_t meta_crc;
} smelt_blob;

/* One section of a tensor; `ptr` is NULL and `len` 0 when the section is absent. */
typedef struct {
    const uint8_t *ptr;
    uint64_t offset, len;
    uint16_t dtype;
} smelt_blob_section;

/* One tensor, decoded from its directory entry. `name` is not NUL-terminated. */
typedef struct {
    const char *name;
    uint32_t name_len;
    uint16_t scheme, dtype;
    uint8_t rank, codec;
    uint16_t flags;
    uint32_t block_size, axis;
    uint64_t dims[SMELT_BLOB_MAX_RANK];
    smelt_blob_section data; /* as stored; `data_raw_len` bytes once decompressed */
    uint64_t data_raw_len;
    smelt_blob_section scales, zeros, aux;
    uint32_t crc;
} smelt_blob_tensor;

/* Validates the blob in buf[0..len) (header, directory, every entry) and fills `blob`. On
 * failure returns the status and, if `err` is not NULL, where it failed. */
smelt_blob_status smelt_blob_open(smelt_blob *blob, const void *buf, size_t len, smelt_blob_error *err);

/* Decodes entry `index` of an opened blob (no further checks are needed). */
smelt_blob_status smelt_blob_tensor_at(const smelt_blob *blob, uint32_t index, smelt_blob_tensor *out);

/* Finds the first tensor called name[0..name_len); returns 1 when found, 0 otherwise. */
int smelt_blob_find(const smelt_blob *blob, const char *name, size_t name_len, smelt_blob_tensor *out);

/* 1 when the tensor's stored sections match its CRC, 0 otherwise. */
int smelt_blob_verify_tensor(const smelt_blob_tensor *t);

/* 1 when the metadata section (or its absence) matches meta_crc, 0 otherwise. */
int smelt_blob_verify_metadata(const smelt_blob *blob);

/* CRC-32 (IEEE 802.3 / zlib) of p[0..n), continuing from `crc` (0 to start). */
uint32_t smelt_blob_crc32(uint32_t crc, const uint8_t *p, size_t n);

/* Names for printing: the BlobError variant, the scheme, the dtype, the codec ("?" if unknown). */
const char *smelt_blob_status_name(smelt_blob_status s);
const char *smelt_blob_scheme_name(uint16_t scheme);
const char *smelt_blob_dtype_name(uint16_t dtype);
const char *smelt_blob_codec_name(uint8_t codec);

#ifdef __cplusplus
}
#endif

#endif /* SMELT_BLOB_H */
