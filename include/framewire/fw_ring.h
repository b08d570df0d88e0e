/* framewire shared-memory ring: the C view of the layout in docs/shm.md
 * (`framewire ring header` prints this file; `--sink ring:STREAM` writes rings).
 * All integers little-endian; offsets checked by _Static_assert. */
#ifndef FW_RING_H
#define FW_RING_H
#include <stddef.h>
#include <stdint.h>

#define FW_RING_MAGIC 0x47525746u /* "FWRG" */
#define FW_RING_VERSION 1
#define FW_RING_BUSY UINT64_MAX

struct fw_ring_header {          /* 128 bytes at offset 0 */
    uint32_t magic;              /* FW_RING_MAGIC */
    uint16_t version;            /* FW_RING_VERSION */
    uint16_t header_size;        /* 128 */
    uint32_t slot_count;         /* default 120 */
    uint32_t slot_size;          /* bytes per slot, header included, multiple of 64 */
    uint64_t region_size;
    uint64_t write_cursor;       /* atomic: frames fully written */
    uint32_t notify;             /* atomic: bumped (and futex-woken) on every write and on close */
    uint32_t closed;             /* atomic: 1 once the writer closed the ring */
    uint8_t reserved[88];
};

struct fw_ring_slot {            /* at 128 + i * slot_size; the frame follows at +64 */
    uint64_t commit;             /* atomic: frame index held, FW_RING_BUSY while written */
    uint64_t sequence;
    uint64_t timestamp_ns;
    uint32_t flags;
    uint32_t len;
    uint8_t reserved[32];
};

_Static_assert(sizeof(struct fw_ring_header) == 128, "header size");
_Static_assert(offsetof(struct fw_ring_header, write_cursor) == 24, "write_cursor");
_Static_assert(offsetof(struct fw_ring_header, notify) == 32, "notify");
_Static_assert(offsetof(struct fw_ring_header, closed) == 36, "closed");
_Static_assert(sizeof(struct fw_ring_slot) == 64, "slot header size");
_Static_assert(offsetof(struct fw_ring_slot, len) == 28, "len");

#endif
