// Storage::release_pages: mapped checkpoint pages leave resident memory, their bytes stay
// readable, and pages the process wrote (copy-on-write) keep what was written.
#include <gtest/gtest.h>

#if defined(__linux__)
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "lmforge/core/tensor.h"

namespace {

// kB of the pages of [p, p + n) mapped into this process (/proc/self/pagemap "present" bits;
// mincore would report the page cache instead).
size_t resident_kb(const void* p, size_t n) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t first = reinterpret_cast<uintptr_t>(p) / page, count = (n + page - 1) / page;
  std::vector<uint64_t> e(count);
  const int fd = ::open("/proc/self/pagemap", O_RDONLY);
  if (fd < 0) return 0;
  const ssize_t got = ::pread(fd, e.data(), count * 8, static_cast<off_t>(first * 8));
  ::close(fd);
  if (got != static_cast<ssize_t>(count * 8)) return 0;
  size_t k = 0;
  for (uint64_t x : e) k += x >> 63;
  return k * page / 1024;
}

// RssFile of this process, kB (pages mapped from files).
size_t rss_file_kb() {
  std::ifstream st("/proc/self/status");
  for (std::string line; std::getline(st, line);)
    if (line.rfind("RssFile:", 0) == 0) return std::stoul(line.substr(8));
  return 0;
}

}  // namespace

TEST(StoragePages, ReleasedMappedPagesLeaveRssKeepTheirBytesAndKeepWrites) {
  const size_t n = size_t{16} << 20;  // 16 MiB of floats 0, 1, 2, ...
  const std::string path =
      (std::filesystem::temp_directory_path() / ("lmf_pages_" + std::to_string(::getpid())))
          .string();
  {
    std::vector<float> v(n / 4);
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(v.data()), n);
  }
  const int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ::close(fd);
  ASSERT_NE(p, MAP_FAILED);
  auto storage = lmf::Storage::wrap(p, n, [p, n] { ::munmap(p, n); });
  storage->set_file_mapped(true);
  float* f = static_cast<float*>(p);
  double sum = 0;
  for (size_t i = 0; i < n / 4; i += 1024) sum += f[i];  // every page resident
  const size_t page_floats = static_cast<size_t>(::sysconf(_SC_PAGESIZE)) / 4;
  f[7 * page_floats + 3] = -1.5f;  // one written (copy-on-write) page
  const size_t before = rss_file_kb();
  EXPECT_GE(resident_kb(p, n), n / 1024 * 3 / 4);

  lmf::Storage::release_pages(f + 1, n - 8);  // not page-aligned: whole inner pages only
  EXPECT_LE(resident_kb(p, n), 64u) << "released pages are still mapped";
  EXPECT_LE(rss_file_kb() + n / 1024 * 3 / 4, before) << "RssFile did not drop";
  EXPECT_EQ(f[7 * page_floats + 3], -1.5f) << "a written page lost its contents";
  double again = 0;
  for (size_t i = 0; i < n / 4; i += 1024) again += f[i];
  EXPECT_EQ(again, sum) << "released pages must read the file's bytes again";
  EXPECT_EQ(f[12345], 12345.0f);

  // known_clean skips the check: used only where nothing can have written the range.
  lmf::Storage::release_pages(f + 8 * page_floats, 4 * page_floats * 4, true);
  EXPECT_EQ(f[9 * page_floats], static_cast<float>(9 * page_floats));
  storage.reset();
  std::filesystem::remove(path);
}

// Large blocks (>= 4 MiB) start on a 2 MiB boundary for transparent huge pages; small ones keep
// the 64-byte alignment; both hold what is written (also when a freed block is reused).
TEST(StoragePages, LargeBlocksAreHugePageAligned) {
  for (size_t n : {size_t{5} << 20, size_t{4} << 20, size_t{100}, size_t{1} << 20}) {
    auto s = lmf::Storage::allocate(n);
    const auto addr = reinterpret_cast<uintptr_t>(s->data());
    EXPECT_EQ(addr % 64, 0u) << n;
    if (n >= (size_t{4} << 20)) EXPECT_EQ(addr % (size_t{2} << 20), 0u) << n;
    auto* b = static_cast<unsigned char*>(s->data());
    for (size_t i = 0; i < n; i += 4093) b[i] = static_cast<unsigned char>(i);
    for (size_t i = 0; i < n; i += 4093) ASSERT_EQ(b[i], static_cast<unsigned char>(i));
  }
}
#endif

// Pooled (huge-page) storages: 64-byte aligned, never overlapping, each keeps its bytes after
// others are freed; one above half a pool gets its own 2 MiB-aligned region.
TEST(StoragePages, PooledStoragesAreAlignedAndDisjoint) {
  std::vector<std::shared_ptr<lmf::Storage>> kept;
  for (size_t n : {size_t{100}, size_t{3} << 20, size_t{1}, size_t{7} << 20, size_t{20} << 20,
                   size_t{30} << 20, size_t{64}}) {
    auto s = lmf::Storage::allocate_pooled(n);
    ASSERT_EQ(s->nbytes(), n);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(s->data()) % 64, 0u) << n;
    if (n > (size_t{16} << 20))
      EXPECT_EQ(reinterpret_cast<uintptr_t>(s->data()) % (size_t{2} << 20), 0u) << n;
    std::memset(s->data(), static_cast<int>(kept.size() + 1), n);
    kept.push_back(s);
  }
  kept.erase(kept.begin() + 1);  // freeing one leaves the others' bytes alone
  for (size_t i = 0; i < kept.size(); ++i) {
    const auto* b = static_cast<const unsigned char*>(kept[i]->data());
    const int want = static_cast<int>(i == 0 ? 1 : i + 2);
    for (size_t j = 0; j < kept[i]->nbytes(); j += 997) ASSERT_EQ(b[j], want) << i;
    ASSERT_EQ(b[kept[i]->nbytes() - 1], want) << i;
  }
}
