/*
 * smelt_blob.c: the allocation-free smelt blob reader (see smelt_blob.h). Every check follows
 * docs/blob-format.md "Reader obligations" in order, with 64-bit arithmetic that is checked for
 * overflow; a pointer into the buffer is formed only after its range was checked against the
 * buffer's length.
 */
#include "smelt_blob.h"

#include <string.h>

/* ---- little-endian loads */

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | ((uint64_t)le32(p + 4) << 32); }

/* ---- checked arithmetic: 1 when the result fits */

static int add_ok(uint64_t a, uint64_t b, uint64_t *r) {
    *r = a + b;
    return *r >= a;
}
static int mul_ok(uint64_t a, uint64_t b, uint64_t *r) {
    if (a != 0 && b > UINT64_MAX / a) return 0;
    *r = a * b;
    return 1;
}
static uint64_t cdiv(uint64_t a, uint64_t b) { return a / b + (a % b != 0); }

/* ---- CRC-32, reflected 0xEDB88320, four bits at a time (a 64-byte table) */

static const uint32_t crc_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
    0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu, 0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
};

uint32_t smelt_blob_crc32(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        crc = (crc >> 4) ^ crc_nibble[crc & 15u];
        crc = (crc >> 4) ^ crc_nibble[crc & 15u];
    }
    return ~crc;
}

/* ---- dtypes: code, name, elements per block, bytes per block */

typedef struct {
    uint16_t code;
    const char *name;
    uint16_t block_elems, block_bytes;
} dtype_info;

static const dtype_info dtypes[] = {
    {0, "F32", 1, 4},     {1, "F16", 1, 2},      {2, "BF16", 1, 2},     {3, "F64", 1, 8},
    {4, "I8", 1, 1},      {5, "I16", 1, 2},      {6, "I32", 1, 4},      {7, "I64", 1, 8},
    {10, "U8", 1, 1},     {11, "U16", 1, 2},     {12, "U32", 1, 4},     {13, "U64", 1, 8},
    {14, "BOOL", 1, 1},   {15, "I4", 2, 1},      {16, "U4", 2, 1},      {17, "F8_E4M3", 1, 1},
    {18, "F8_E5M2", 1, 1}, {32, "Q4_0", 32, 18}, {33, "Q4_1", 32, 20},  {34, "Q5_0", 32, 22},
    {35, "Q5_1", 32, 24}, {36, "Q8_0", 32, 34},  {37, "Q2_K", 256, 84}, {38, "Q3_K", 256, 110},
    {39, "Q4_K", 256, 144}, {40, "Q5_K", 256, 176}, {41, "Q6_K", 256, 210}, {42, "TQ1_0", 256, 54},
    {43, "TQ2_0", 256, 66},
};
enum { DT_F32 = 0, DT_I8 = 4, DT_I32 = 6, DT_U8 = 10 };

static const dtype_info *dtype_of(uint16_t code) {
    size_t i;
    for (i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (dtypes[i].code == code) return &dtypes[i];
    return NULL;
}
static int is_ggml(const dtype_info *d) { return d->block_elems >= 32; }

const char *smelt_blob_dtype_name(uint16_t dtype) {
    const dtype_info *d = dtype_of(dtype);
    return d ? d->name : "?";
}
const char *smelt_blob_scheme_name(uint16_t scheme) {
    static const char *const names[] = {"raw", "int8", "nf4", "int4", "ternary2", "ternary3", "ggml"};
    return scheme < 7 ? names[scheme] : "?";
}
const char *smelt_blob_codec_name(uint8_t codec) {
    static const char *const names[] = {"none", "zstd", "lz4"};
    return codec < 3 ? names[codec] : "?";
}
const char *smelt_blob_status_name(smelt_blob_status s) {
    static const char *const names[] = {
        "Ok", "FileTooShort", "BadMagic", "UnsupportedVersion", "HeaderChecksum", "HeaderFieldValue",
        "FileSizeMismatch", "ReservedNotZero", "TooManyTensors", "MetadataPresence", "Misaligned",
        "RegionOutOfBounds", "DirectoryChecksum", "NameNotPacked", "NameOutOfBounds", "EmptyName", "NameTooLong",
        "NameNotUtf8", "RankTooLarge", "UnusedDimNotZero", "UnknownScheme", "UnknownDtype", "UnknownCodec",
        "CompressedInUncompressedFile", "DtypeNotAllowed", "RankNotAllowed", "FlagsNotAllowed",
        "BadBlockSize", "BadAxis", "SizeOverflow", "RowNotWholeBlocks", "SectionLength",
        "StoredLengthMismatch", "ImpossibleRawLength", "AbsentSectionOffset", "SectionOutOfBounds",
        "SectionOutOfOrder", "GroupIndexOutOfRange", "BadArgument",
    };
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

/* ---- field offsets (the spec's tables) */

enum {
    H_VERSION_MAJOR = 8, H_VERSION_MINOR = 10, H_HEADER_SIZE = 12, H_DIR_ENTRY_SIZE = 16,
    H_TENSOR_COUNT = 20, H_DIR_OFFSET = 24, H_STRTAB_OFFSET = 32, H_STRTAB_SIZE = 40,
    H_META_OFFSET = 48, H_META_SIZE = 56, H_DATA_OFFSET = 64, H_DATA_SIZE = 72, H_FILE_SIZE = 80,
    H_FLAGS = 88, H_DIR_CRC = 96, H_META_CRC = 100, H_RESERVED = 104, H_HEADER_CRC = 124
};
enum {
    E_NAME_OFFSET = 0, E_NAME_LEN = 4, E_SCHEME = 8, E_DTYPE = 10, E_RANK = 12, E_CODEC = 13,
    E_FLAGS = 14, E_BLOCK_SIZE = 16, E_AXIS = 20, E_DIMS = 24, E_DATA_OFFSET = 88,
    E_DATA_STORED_LEN = 96, E_DATA_RAW_LEN = 104, E_SCALES_OFFSET = 112, E_SCALES_LEN = 120,
    E_ZEROS_OFFSET = 128, E_ZEROS_LEN = 136, E_AUX_OFFSET = 144, E_AUX_LEN = 152,
    E_SCALES_DTYPE = 160, E_ZEROS_DTYPE = 162, E_AUX_DTYPE = 164, E_RESERVED_166 = 166, E_CRC = 168,
    E_RESERVED_172 = 172
};

#define FAIL(code, idx, at)          \
    do {                             \
        if (err) {                   \
            err->status = (code);    \
            err->tensor = (idx);     \
            err->offset = (at);      \
        }                            \
        return (code);               \
    } while (0)

/* Length of the first valid UTF-8 prefix of p[0..n) (Rust's `valid_up_to`). */
static uint64_t utf8_valid_up_to(const uint8_t *p, uint64_t n) {
    uint64_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        uint64_t k, need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c >= 0xE0 && c <= 0xEF) { need = 2; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
        else if (c >= 0xF0 && c <= 0xF4) { need = 3; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
        else return i;
        if (n - i - 1 < need) return i;
        for (k = 1; k <= need; k++) {
            uint8_t b = p[i + k];
            if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return i;
        }
        i += need + 1;
    }
    return n;
}

/* What a section must be: len 0 = absent; `optional`: absent or exactly `len`. */
typedef struct {
    uint64_t len;
    uint16_t dtype;
    int optional;
} section_rule;

typedef struct {
    uint64_t data_raw_len;
    section_rule scales, zeros, aux;
    uint64_t groups; /* int4 with g_idx: group count, else 0 */
} entry_rules;

/* The spec's "Exact rules per scheme"; fills `r` or fails with the check's status. */
static smelt_blob_status scheme_rules(const uint8_t *e, const dtype_info *dt, entry_rules *r, uint64_t eo,
                                      uint32_t index, smelt_blob_error *err) {
    uint16_t scheme = le16(e + E_SCHEME), flags = (uint16_t)(le16(e + E_FLAGS) & 7u);
    uint8_t rank = e[E_RANK];
    uint32_t block = le32(e + E_BLOCK_SIZE), axis = le32(e + E_AXIS);
    uint64_t numel = 1, d, used, cnt, rows = 1, cols, groups, cells, tmp;
    int dtype_ok, needs_block, axis_ok, per_axis = (flags & SMELT_BLOB_FLAG_PER_AXIS) != 0;
    unsigned i;

    switch (scheme) {
    case SMELT_BLOB_RAW: dtype_ok = !is_ggml(dt); break;
    case SMELT_BLOB_INT8: dtype_ok = dt->code == DT_I8 || dt->code == DT_U8; break;
    case SMELT_BLOB_GGML: dtype_ok = is_ggml(dt); break;
    default: dtype_ok = dt->code == DT_U8; break;
    }
    if (!dtype_ok) FAIL(SMELT_BLOB_DTYPE_NOT_ALLOWED, index, eo + E_DTYPE);
    if (scheme == SMELT_BLOB_INT4 && rank == 0) FAIL(SMELT_BLOB_RANK_NOT_ALLOWED, index, eo + E_RANK);
    used = scheme == SMELT_BLOB_INT8 ? 3u : scheme == SMELT_BLOB_NF4 ? 4u : scheme == SMELT_BLOB_INT4 ? 1u : 0u;
    if (flags & ~used) FAIL(SMELT_BLOB_FLAGS_NOT_ALLOWED, index, eo + E_FLAGS);
    needs_block = scheme == SMELT_BLOB_NF4 || scheme == SMELT_BLOB_INT4;
    if (needs_block != (block != 0)) FAIL(SMELT_BLOB_BAD_BLOCK_SIZE, index, eo + E_BLOCK_SIZE);
    axis_ok = per_axis ? (axis != SMELT_BLOB_NO_AXIS && axis < rank) : axis == SMELT_BLOB_NO_AXIS;
    if (!axis_ok) FAIL(SMELT_BLOB_BAD_AXIS, index, eo + E_AXIS);
    for (i = 0; i < rank; i++)
        if (!mul_ok(numel, le64(e + E_DIMS + 8 * i), &numel)) FAIL(SMELT_BLOB_SIZE_OVERFLOW, index, eo + E_DIMS);

    memset(r, 0, sizeof *r);
#define EXACTLY(rule, n, dt_code) ((rule).len = (n), (rule).dtype = (dt_code), (rule).optional = 0)
    switch (scheme) {
    case SMELT_BLOB_GGML:
        d = rank ? le64(e + E_DIMS + 8 * (rank - 1u)) : 1;
        if (d % dt->block_elems) FAIL(SMELT_BLOB_ROW_NOT_WHOLE_BLOCKS, index, eo + E_DIMS + 8u * (rank ? rank - 1u : 0u));
        /* fallthrough */
    case SMELT_BLOB_RAW:
        if (!mul_ok(cdiv(numel, dt->block_elems), dt->block_bytes, &r->data_raw_len))
            FAIL(SMELT_BLOB_SIZE_OVERFLOW, index, eo + E_DIMS);
        break;
    case SMELT_BLOB_INT8:
        cnt = per_axis ? le64(e + E_DIMS + 8 * axis) : 1;
        r->data_raw_len = numel;
        if (!mul_ok(cnt, 4, &tmp)) FAIL(SMELT_BLOB_SIZE_OVERFLOW, index, eo + E_DIMS);
        EXACTLY(r->scales, tmp, DT_F32);
        if (!(flags & SMELT_BLOB_FLAG_SYMMETRIC)) EXACTLY(r->zeros, cnt, dt->code);
        break;
    case SMELT_BLOB_NF4:
        cnt = cdiv(numel, block);
        r->data_raw_len = cdiv(numel, 2);
        if (flags & SMELT_BLOB_FLAG_DOUBLE_QUANT) {
            EXACTLY(r->scales, cnt, DT_U8);
            if (!mul_ok(cdiv(cnt, 256) + 257, 4, &tmp)) FAIL(SMELT_BLOB_SIZE_OVERFLOW, index, eo + E_DIMS);
            EXACTLY(r->aux, tmp, DT_F32);
        } else {
            if (!mul_ok(cnt, 4, &tmp)) FAIL(SMELT_BLOB_SIZE_OVERFLOW, index, eo + E_DIMS);
            EXACTLY(r->scales, tmp, DT_F32);
        }
        break;
    case SMELT_BLOB_INT4:
        cols = le64(e + E_DIMS + 8 * (rank - 1u));
        for (i = 0; i + 1u < rank; i++)
            if (!mul_ok(rows, le64(e + E_DIMS + 8 * i), &rows)) FAIL(SMELT_BLOB_SIZE_OVERFLOW, index, eo + E_DIMS);
        groups = cdiv(cols, block);
        if (!mul_ok(rows, groups, &cells) || !mul_ok(rows, cdiv(cols, 2), &r->data_raw_len) ||
            !mul_ok(cells, 4, &tmp))
            FAIL(SMELT_BLOB_SIZE_OVERFLOW, index, eo + E_DIMS);
        EXACTLY(r->scales, tmp, DT_F32);
        if (!(flags & SMELT_BLOB_FLAG_SYMMETRIC)) EXACTLY(r->zeros, cells, DT_U8);
        if (!mul_ok(cols, 4, &tmp)) FAIL(SMELT_BLOB_SIZE_OVERFLOW, index, eo + E_DIMS);
        EXACTLY(r->aux, tmp, DT_I32);
        r->aux.optional = 1;
        r->groups = groups;
        break;
    case SMELT_BLOB_TERNARY2:
    case SMELT_BLOB_TERNARY3:
        r->data_raw_len = cdiv(numel, scheme == SMELT_BLOB_TERNARY2 ? 4 : 5);
        EXACTLY(r->scales, 4, DT_F32);
        break;
    }
#undef EXACTLY
    return SMELT_BLOB_OK;
}

static int rule_allows(const section_rule *r, uint64_t len) {
    return len == r->len || (r->optional && len == 0);
}

static smelt_blob_status check_entry(const smelt_blob *b, uint32_t index, uint64_t *name_end,
                                     uint64_t *previous_end, smelt_blob_error *err) {
    uint64_t eo = SMELT_BLOB_HEADER_SIZE + (uint64_t)index * SMELT_BLOB_ENTRY_SIZE;
    const uint8_t *e = b->base + eo;
    uint64_t name_off = le32(e + E_NAME_OFFSET), name_len = le32(e + E_NAME_LEN), at, raw, stored, max;
    uint16_t scheme = le16(e + E_SCHEME), sdt[3];
    uint8_t rank = e[E_RANK], codec = e[E_CODEC];
    const dtype_info *dt;
    entry_rules r;
    const section_rule *rules[3];
    static const unsigned len_field[4] = {E_DATA_STORED_LEN, E_SCALES_LEN, E_ZEROS_LEN, E_AUX_LEN};
    static const unsigned off_field[4] = {E_DATA_OFFSET, E_SCALES_OFFSET, E_ZEROS_OFFSET, E_AUX_OFFSET};
    static const unsigned dt_field[3] = {E_SCALES_DTYPE, E_ZEROS_DTYPE, E_AUX_DTYPE};
    smelt_blob_status s;
    unsigned i;

    /* Name: packed after the previous one, inside the string table, non-empty, capped, UTF-8. */
    if (name_off != *name_end) FAIL(SMELT_BLOB_NAME_NOT_PACKED, index, eo + E_NAME_OFFSET);
    if (name_off + name_len > b->strtab_size) FAIL(SMELT_BLOB_NAME_OUT_OF_BOUNDS, index, eo + E_NAME_OFFSET);
    if (name_len == 0) FAIL(SMELT_BLOB_EMPTY_NAME, index, eo + E_NAME_LEN);
    if (name_len > SMELT_BLOB_MAX_NAME_LEN) FAIL(SMELT_BLOB_NAME_TOO_LONG, index, eo + E_NAME_LEN);
    at = b->strtab_offset + name_off;
    if (utf8_valid_up_to(b->base + at, name_len) != name_len) FAIL(SMELT_BLOB_NAME_NOT_UTF8, index, at);
    *name_end = name_off + name_len;

    if (b->version_minor == 0) {
        if (le16(e + E_RESERVED_166)) FAIL(SMELT_BLOB_RESERVED_NOT_ZERO, index, eo + E_RESERVED_166);
        if (le32(e + E_RESERVED_172)) FAIL(SMELT_BLOB_RESERVED_NOT_ZERO, index, eo + E_RESERVED_172);
        if (le16(e + E_FLAGS) & ~7u) FAIL(SMELT_BLOB_RESERVED_NOT_ZERO, index, eo + E_FLAGS);
    }
    if (rank > SMELT_BLOB_MAX_RANK) FAIL(SMELT_BLOB_RANK_TOO_LARGE, index, eo + E_RANK);
    for (i = rank; i < SMELT_BLOB_MAX_RANK; i++)
        if (le64(e + E_DIMS + 8 * i)) FAIL(SMELT_BLOB_UNUSED_DIM_NOT_ZERO, index, eo + E_DIMS + 8 * i);

    if (scheme > SMELT_BLOB_GGML) FAIL(SMELT_BLOB_UNKNOWN_SCHEME, index, eo + E_SCHEME);
    dt = dtype_of(le16(e + E_DTYPE));
    if (!dt) FAIL(SMELT_BLOB_UNKNOWN_DTYPE, index, eo + E_DTYPE);
    for (i = 0; i < 3; i++) {
        sdt[i] = le16(e + dt_field[i]);
        if (!dtype_of(sdt[i])) FAIL(SMELT_BLOB_UNKNOWN_DTYPE, index, eo + dt_field[i]);
    }
    if (codec > SMELT_BLOB_CODEC_LZ4) FAIL(SMELT_BLOB_UNKNOWN_CODEC, index, eo + E_CODEC);
    if ((b->flags & 1u) && codec != SMELT_BLOB_CODEC_NONE)
        FAIL(SMELT_BLOB_COMPRESSED_IN_UNCOMPRESSED_FILE, index, eo + E_CODEC);

    s = scheme_rules(e, dt, &r, eo, index, err);
    if (s != SMELT_BLOB_OK) return s;
    raw = le64(e + E_DATA_RAW_LEN);
    if (raw != r.data_raw_len) FAIL(SMELT_BLOB_SECTION_LENGTH, index, eo + E_DATA_RAW_LEN);
    rules[0] = &r.scales;
    rules[1] = &r.zeros;
    rules[2] = &r.aux;
    for (i = 0; i < 3; i++)
        if (!rule_allows(rules[i], le64(e + len_field[i + 1])))
            FAIL(SMELT_BLOB_SECTION_LENGTH, index, eo + len_field[i + 1]);
    stored = le64(e + E_DATA_STORED_LEN);
    if (codec == SMELT_BLOB_CODEC_NONE) {
        if (stored != raw) FAIL(SMELT_BLOB_STORED_LENGTH_MISMATCH, index, eo + E_DATA_STORED_LEN);
    } else {
        if (!mul_ok(stored, codec == SMELT_BLOB_CODEC_ZSTD ? 32768u : 255u, &max)) max = UINT64_MAX;
        if (raw > max) FAIL(SMELT_BLOB_IMPOSSIBLE_RAW_LENGTH, index, eo + E_DATA_RAW_LEN);
    }
    for (i = 0; i < 3; i++) {
        uint16_t want = le64(e + len_field[i + 1]) ? rules[i]->dtype : 0;
        if (sdt[i] != want) FAIL(SMELT_BLOB_DTYPE_NOT_ALLOWED, index, eo + dt_field[i]);
    }

    /* Sections: absent at 0; present aligned, inside the data region, in order. */
    for (i = 0; i < 4; i++) {
        uint64_t off = le64(e + off_field[i]), len = le64(e + len_field[i]), end;
        if (len == 0) {
            if (off) FAIL(SMELT_BLOB_ABSENT_SECTION_OFFSET, index, eo + off_field[i]);
            continue;
        }
        if (off % SMELT_BLOB_ALIGN) FAIL(SMELT_BLOB_MISALIGNED, index, eo + off_field[i]);
        if (!add_ok(off, len, &end) || off < b->data_offset || end > b->size)
            FAIL(SMELT_BLOB_SECTION_OUT_OF_BOUNDS, index, off);
        if (off < *previous_end) FAIL(SMELT_BLOB_SECTION_OUT_OF_ORDER, index, off);
        *previous_end = end;
    }
    if (scheme == SMELT_BLOB_INT4 && le64(e + E_AUX_LEN)) {
        uint64_t off = le64(e + E_AUX_OFFSET), n = le64(e + E_AUX_LEN) / 4, c;
        for (c = 0; c < n; c++) {
            int32_t g = (int32_t)le32(b->base + off + 4 * c);
            if (g < 0 || (uint64_t)g >= r.groups) FAIL(SMELT_BLOB_GROUP_INDEX_OUT_OF_RANGE, index, off + 4 * c);
        }
    }
    return SMELT_BLOB_OK;
}

smelt_blob_status smelt_blob_open(smelt_blob *blob, const void *buf, size_t len, smelt_blob_error *err) {
    const uint8_t *p = (const uint8_t *)buf;
    const uint32_t none = UINT32_MAX;
    uint64_t size = (uint64_t)len, count, dir_end, strtab_end, limit, end, previous_end, name_end = 0;
    uint32_t i;
    smelt_blob b;
    smelt_blob_status s;

    if (err) {
        err->status = SMELT_BLOB_OK;
        err->tensor = none;
        err->offset = 0;
    }
    if (!blob || (!p && len)) FAIL(SMELT_BLOB_BAD_ARGUMENT, none, 0);
    if (size < SMELT_BLOB_HEADER_SIZE) FAIL(SMELT_BLOB_FILE_TOO_SHORT, none, 0);
    if (memcmp(p, "SMELTBLB", 8) != 0) FAIL(SMELT_BLOB_BAD_MAGIC, none, 0);
    memset(&b, 0, sizeof b);
    b.base = p;
    b.size = size;
    b.version_major = le16(p + H_VERSION_MAJOR);
    b.version_minor = le16(p + H_VERSION_MINOR);
    if (b.version_major != 1) FAIL(SMELT_BLOB_UNSUPPORTED_VERSION, none, H_VERSION_MAJOR);
    if (smelt_blob_crc32(0, p, H_HEADER_CRC) != le32(p + H_HEADER_CRC))
        FAIL(SMELT_BLOB_HEADER_CHECKSUM, none, H_HEADER_CRC);
    if (le32(p + H_HEADER_SIZE) != SMELT_BLOB_HEADER_SIZE) FAIL(SMELT_BLOB_HEADER_FIELD_VALUE, none, H_HEADER_SIZE);
    if (le32(p + H_DIR_ENTRY_SIZE) != SMELT_BLOB_ENTRY_SIZE)
        FAIL(SMELT_BLOB_HEADER_FIELD_VALUE, none, H_DIR_ENTRY_SIZE);
    if (le64(p + H_FILE_SIZE) != size) FAIL(SMELT_BLOB_FILE_SIZE_MISMATCH, none, H_FILE_SIZE);
    b.flags = le64(p + H_FLAGS);
    if (b.version_minor == 0) {
        for (i = H_RESERVED; i < H_HEADER_CRC; i++)
            if (p[i]) FAIL(SMELT_BLOB_RESERVED_NOT_ZERO, none, i);
        if (b.flags & ~(uint64_t)1) FAIL(SMELT_BLOB_RESERVED_NOT_ZERO, none, H_FLAGS);
    }
    count = le32(p + H_TENSOR_COUNT);
    if (count > SMELT_BLOB_MAX_TENSORS) FAIL(SMELT_BLOB_TOO_MANY_TENSORS, none, H_TENSOR_COUNT);
    b.tensor_count = (uint32_t)count;
    if (le64(p + H_DIR_OFFSET) != SMELT_BLOB_HEADER_SIZE) FAIL(SMELT_BLOB_HEADER_FIELD_VALUE, none, H_DIR_OFFSET);
    dir_end = SMELT_BLOB_HEADER_SIZE + count * SMELT_BLOB_ENTRY_SIZE; /* count <= 2^20 */
    b.strtab_offset = le64(p + H_STRTAB_OFFSET);
    if (b.strtab_offset != dir_end) FAIL(SMELT_BLOB_HEADER_FIELD_VALUE, none, H_STRTAB_OFFSET);
    b.strtab_size = le64(p + H_STRTAB_SIZE);
    b.meta_offset = le64(p + H_META_OFFSET);
    b.meta_size = le64(p + H_META_SIZE);
    b.data_offset = le64(p + H_DATA_OFFSET);
    b.meta_crc = le32(p + H_META_CRC);
    if ((b.meta_size != 0) != (b.meta_offset != 0)) FAIL(SMELT_BLOB_METADATA_PRESENCE, none, H_META_OFFSET);
    if (b.meta_offset % SMELT_BLOB_ALIGN) FAIL(SMELT_BLOB_MISALIGNED, none, H_META_OFFSET);
    if (b.data_offset % SMELT_BLOB_ALIGN) FAIL(SMELT_BLOB_MISALIGNED, none, H_DATA_OFFSET);

    /* Regions in order, inside the file. */
    if (dir_end > size) FAIL(SMELT_BLOB_REGION_OUT_OF_BOUNDS, none, H_TENSOR_COUNT);
    limit = b.meta_size ? b.meta_offset : b.data_offset;
    if (limit > size) limit = size;
    if (!add_ok(b.strtab_offset, b.strtab_size, &strtab_end) || strtab_end > limit)
        FAIL(SMELT_BLOB_REGION_OUT_OF_BOUNDS, none, H_STRTAB_SIZE);
    if (b.meta_size) {
        limit = b.data_offset < size ? b.data_offset : size;
        if (b.meta_offset < strtab_end || !add_ok(b.meta_offset, b.meta_size, &end) || end > limit)
            FAIL(SMELT_BLOB_REGION_OUT_OF_BOUNDS, none, H_META_OFFSET);
    }
    if (b.data_offset < strtab_end || b.data_offset > size) FAIL(SMELT_BLOB_REGION_OUT_OF_BOUNDS, none, H_DATA_OFFSET);
    if (le64(p + H_DATA_SIZE) != size - b.data_offset) FAIL(SMELT_BLOB_HEADER_FIELD_VALUE, none, H_DATA_SIZE);
    if (smelt_blob_crc32(0, p + SMELT_BLOB_HEADER_SIZE, (size_t)(strtab_end - SMELT_BLOB_HEADER_SIZE)) !=
        le32(p + H_DIR_CRC))
        FAIL(SMELT_BLOB_DIRECTORY_CHECKSUM, none, SMELT_BLOB_HEADER_SIZE);

    previous_end = b.data_offset;
    for (i = 0; i < b.tensor_count; i++) {
        s = check_entry(&b, i, &name_end, &previous_end, err);
        if (s != SMELT_BLOB_OK) return s;
    }
    *blob = b;
    return SMELT_BLOB_OK;
}

static smelt_blob_section section(const smelt_blob *b, const uint8_t *e, unsigned off_field, unsigned len_field,
                                  uint16_t dtype) {
    smelt_blob_section s;
    s.offset = le64(e + off_field);
    s.len = le64(e + len_field);
    s.dtype = dtype;
    s.ptr = s.len ? b->base + s.offset : NULL;
    return s;
}

smelt_blob_status smelt_blob_tensor_at(const smelt_blob *blob, uint32_t index, smelt_blob_tensor *out) {
    const uint8_t *e;
    unsigned i;
    if (!blob || !out || index >= blob->tensor_count) return SMELT_BLOB_BAD_ARGUMENT;
    e = blob->base + SMELT_BLOB_HEADER_SIZE + (uint64_t)index * SMELT_BLOB_ENTRY_SIZE;
    out->name = (const char *)(blob->base + blob->strtab_offset + le32(e + E_NAME_OFFSET));
    out->name_len = le32(e + E_NAME_LEN);
    out->scheme = le16(e + E_SCHEME);
    out->dtype = le16(e + E_DTYPE);
    out->rank = e[E_RANK];
    out->codec = e[E_CODEC];
    out->flags = le16(e + E_FLAGS);
    out->block_size = le32(e + E_BLOCK_SIZE);
    out->axis = le32(e + E_AXIS);
    for (i = 0; i < SMELT_BLOB_MAX_RANK; i++) out->dims[i] = le64(e + E_DIMS + 8 * i);
    out->data = section(blob, e, E_DATA_OFFSET, E_DATA_STORED_LEN, out->dtype);
    out->data_raw_len = le64(e + E_DATA_RAW_LEN);
    out->scales = section(blob, e, E_SCALES_OFFSET, E_SCALES_LEN, le16(e + E_SCALES_DTYPE));
    out->zeros = section(blob, e, E_ZEROS_OFFSET, E_ZEROS_LEN, le16(e + E_ZEROS_DTYPE));
    out->aux = section(blob, e, E_AUX_OFFSET, E_AUX_LEN, le16(e + E_AUX_DTYPE));
    out->crc = le32(e + E_CRC);
    return SMELT_BLOB_OK;
}

int smelt_blob_find(const smelt_blob *blob, const char *name, size_t name_len, smelt_blob_tensor *out) {
    uint32_t i;
    if (!blob || !name || !out) return 0;
    for (i = 0; i < blob->tensor_count; i++) {
        if (smelt_blob_tensor_at(blob, i, out) == SMELT_BLOB_OK && out->name_len == name_len &&
            memcmp(out->name, name, name_len) == 0)
            return 1;
    }
    return 0;
}

int smelt_blob_verify_tensor(const smelt_blob_tensor *t) {
    uint32_t crc = 0;
    const smelt_blob_section *s[4];
    unsigned i;
    s[0] = &t->data;
    s[1] = &t->scales;
    s[2] = &t->zeros;
    s[3] = &t->aux;
    for (i = 0; i < 4; i++)
        if (s[i]->len) crc = smelt_blob_crc32(crc, s[i]->ptr, (size_t)s[i]->len);
    return crc == t->crc;
}

int smelt_blob_verify_metadata(const smelt_blob *blob) {
    if (!blob->meta_size) return 1;
    return smelt_blob_crc32(0, blob->base + blob->meta_offset, (size_t)blob->meta_size) == blob->meta_crc;
}
