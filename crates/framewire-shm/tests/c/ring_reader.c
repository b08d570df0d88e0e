/* A foreign reader of a framewire ring: attaches to the ring file, reads
 * N frames with its own cursor, verifies each frame's checksum (64-bit FNV
 * over little-endian 8-byte words, carried in timestamp_ns), and prints
 * "frames=N lost=L bad=B". Usage: ring_reader PATH N TIMEOUT_MS */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "fw_ring.h"

static uint64_t fnv(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t w = 0;
        memcpy(&w, p + i, n - i < 8 ? n - i : 8);
        h = (h ^ w) * 0x100000001b3ull;
    }
    return h;
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) { perror("open"); return 1; }
    struct stat st;
    fstat(fd, &st);
    const uint8_t *base = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) { perror("mmap"); return 1; }
    const struct fw_ring_header *h = (const void *)base;
    if (h->magic != FW_RING_MAGIC || h->version != FW_RING_VERSION) { fprintf(stderr, "not a ring\n"); return 1; }
    uint64_t want = strtoull(argv[2], 0, 10), deadline = now_ms() + strtoull(argv[3], 0, 10);
    uint64_t slots = h->slot_count, cursor = __atomic_load_n(&h->write_cursor, __ATOMIC_ACQUIRE);
    uint64_t frames = 0, lost = 0, bad = 0;
    uint8_t *buf = malloc(h->slot_size);
    while (frames < want && now_ms() < deadline) {
        uint64_t w = __atomic_load_n(&h->write_cursor, __ATOMIC_ACQUIRE);
        if (cursor >= w) { usleep(500); continue; }
        uint64_t oldest = w > slots - 1 ? w - (slots - 1) : 0;
        if (cursor < oldest) { lost += oldest - cursor; cursor = oldest; }
        const struct fw_ring_slot *s = (const void *)(base + 128 + (cursor % slots) * h->slot_size);
        if (__atomic_load_n(&s->commit, __ATOMIC_ACQUIRE) != cursor) continue;
        uint32_t len = s->len;
        if (len > h->slot_size - 64) len = h->slot_size - 64;
        uint64_t ts = s->timestamp_ns;
        memcpy(buf, (const uint8_t *)s + 64, len);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&s->commit, __ATOMIC_RELAXED) != cursor) continue; /* lapped: retry */
        if (fnv(buf, len) != ts) bad++;
        frames++;
        cursor++;
    }
    printf("frames=%llu lost=%llu bad=%llu\n", (unsigned long long)frames, (unsigned long long)lost,
           (unsigned long long)bad);
    return frames == want ? 0 : 1;
}
