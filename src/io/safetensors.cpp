// safetensors: 8-byte little-endian header length, a JSON header {name: {dtype, shape,
// data_offsets}, "__metadata__": {str: str}}, then the data section. Validated fully before any
// tensor byte is read; loaded as views of one private mapping of the file.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "io/io_util.h"
#include "lmforge/io/checkpoint.h"

namespace lmf::io {

using detail::StoredType;
using nlohmann::json;

namespace {

constexpr uint64_t kMaxHeader = 100'000'000;  // the limit the reference implementation uses

std::optional<StoredType> parse_dtype(const std::string& s) {
  static const std::pair<const char*, StoredType> table[] = {
      {"F32", StoredType::f32}, {"F16", StoredType::f16},   {"BF16", StoredType::bf16},
      {"F64", StoredType::f64}, {"I64", StoredType::i64},   {"I32", StoredType::i32},
      {"I16", StoredType::i16}, {"I8", StoredType::i8},     {"U8", StoredType::u8},
      {"BOOL", StoredType::boolean}};
  for (const auto& [name, t] : table)
    if (s == name) return t;
  return std::nullopt;
}

uint64_t as_count(const json& v, const std::string& what, const char* field) {
  if (!v.is_number_unsigned())
    fail<IoError>("{}: '{}' must hold non-negative integers, got {}", what, field,
                  detail::printable(v.dump(), 40));
  return v.get<uint64_t>();
}

struct Parsed {
  SafetensorsHeader header;
  std::vector<StoredType> stored;  // parallel to header.tensors
};

Parsed parse(const uint8_t* data, size_t size, const std::string& file) {
  LMF_CHECK(size >= 8, IoError,
            "{}: {} bytes is too short for a safetensors file (needs an 8-byte header length)",
            file, size);
  const uint64_t n = detail::le64(data);
  LMF_CHECK(n <= size - 8, IoError,
            "{}: safetensors header says it is {} bytes long but the file has only {} bytes after "
            "the length field (truncated or not a safetensors file)",
            file, n, size - 8);
  LMF_CHECK(n <= kMaxHeader, IoError, "{}: safetensors header of {} bytes exceeds the {} limit",
            file, n, kMaxHeader);
  const char* hb = reinterpret_cast<const char*>(data + 8);
  // Duplicate top-level keys would silently overwrite each other in the DOM: refuse them.
  std::set<std::string> seen;
  auto cb = [&](int depth, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::key && depth == 1) {
      const auto& k = parsed.get_ref<const std::string&>();
      if (!seen.insert(k).second)
        fail<IoError>("{}: tensor name '{}' appears twice in the safetensors header", file,
                      detail::printable(k));
    }
    return true;
  };
  json j;
  try {
    j = json::parse(hb, hb + n, cb);
  } catch (const json::exception& e) {
    fail<IoError>("{}: safetensors header (bytes 8..{}) is not valid JSON: {}", file, 8 + n,
                  e.what());
  }
  LMF_CHECK(j.is_object(), IoError, "{}: safetensors header is JSON but not an object ({})", file,
            j.type_name());

  Parsed out;
  SafetensorsHeader& h = out.header;
  h.data_start = 8 + n;
  const uint64_t data_size = size - h.data_start;
  for (const auto& [name, v] : j.items()) {
    const std::string what = fmt::format("{}: tensor '{}'", file, detail::printable(name));
    if (name == "__metadata__") {
      LMF_CHECK(v.is_object(), IoError, "{}: __metadata__ must be an object of strings", file);
      for (const auto& [k, mv] : v.items()) {
        LMF_CHECK(mv.is_string(), IoError, "{}: __metadata__['{}'] must be a string, got {}", file,
                  detail::printable(k), mv.type_name());
        h.metadata[k] = mv.get<std::string>();
      }
      continue;
    }
    LMF_CHECK(v.is_object(), IoError, "{} must be an object with dtype, shape, data_offsets", what);
    for (const char* f : {"dtype", "shape", "data_offsets"})
      LMF_CHECK(v.contains(f), IoError, "{} has no '{}'", what, f);
    const json& jd = v["dtype"];
    LMF_CHECK(jd.is_string(), IoError, "{}: dtype must be a string", what);
    const std::string ds = jd.get<std::string>();
    const auto st = parse_dtype(ds);
    LMF_CHECK(st.has_value(), IoError,
              "{} has dtype '{}', which lmforge cannot load (supported: F32 F16 BF16 F64 I64 I32 "
              "I16 I8 U8 BOOL)",
              what, detail::printable(ds));
    const json& js = v["shape"];
    LMF_CHECK(js.is_array(), IoError, "{}: shape must be an array", what);
    LMF_CHECK(js.size() <= 64, IoError, "{}: shape has {} dimensions (at most 64)", what,
              js.size());
    TensorInfo info;
    info.name = name;
    info.stored_dtype = std::string(detail::stored_name(*st));
    info.dtype = detail::loaded_dtype(*st, std::nullopt);
    uint64_t numel = 1;
    for (const auto& d : js) {
      const uint64_t dim = as_count(d, what, "shape");
      LMF_CHECK(dim <= static_cast<uint64_t>(INT64_MAX) && !__builtin_mul_overflow(numel, dim, &numel),
                IoError, "{}: shape {} has too many elements", what, js.dump());
      info.shape.push_back(static_cast<int64_t>(dim));
    }
    const json& jo = v["data_offsets"];
    LMF_CHECK(jo.is_array() && jo.size() == 2, IoError,
              "{}: data_offsets must be [begin, end], got {}", what, detail::printable(jo.dump()));
    const uint64_t b = as_count(jo[0], what, "data_offsets"),
                   e = as_count(jo[1], what, "data_offsets");
    LMF_CHECK(b <= e, IoError, "{}: data_offsets [{}, {}] end before they begin", what, b, e);
    LMF_CHECK(e <= data_size, IoError,
              "{} ends at byte {} of the data section (file byte {}) but the data section has "
              "only {} bytes (truncated file?)",
              what, e, e + h.data_start, data_size);
    uint64_t nbytes = 0;
    LMF_CHECK(!__builtin_mul_overflow(numel, detail::stored_size(*st), &nbytes) && nbytes == e - b,
              IoError, "{}: {} {} needs {} x {} bytes but data_offsets [{}, {}] hold {} bytes", what,
              ds, js.dump(), numel, detail::stored_size(*st), b, e, e - b);
    LMF_CHECK(numel <= static_cast<uint64_t>(INT64_MAX), IoError, "{}: too many elements", what);
    info.begin = b;
    info.end = e;
    h.tensors.push_back(std::move(info));
    out.stored.push_back(*st);
  }
  // Overlapping byte ranges would alias two tensors; gaps are tolerated.
  std::vector<size_t> order(h.tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const auto &x = h.tensors[a], &y = h.tensors[b];
    return std::tie(x.begin, x.end) < std::tie(y.begin, y.end);
  });
  for (size_t k = 1; k < order.size(); ++k) {
    const auto &p = h.tensors[order[k - 1]], &c = h.tensors[order[k]];
    LMF_CHECK(p.end <= c.begin, IoError,
              "{}: tensors '{}' (bytes [{}, {})) and '{}' (bytes [{}, {})) overlap", file,
              detail::printable(p.name), p.begin, p.end, detail::printable(c.name), c.begin, c.end);
  }
  return out;
}

StateDict load_from_storage(const std::shared_ptr<Storage>& storage, const std::string& file,
                            std::optional<DType> convert_to) {
  detail::check_convert_to(convert_to);
  const auto* data = static_cast<const uint8_t*>(storage->data());
  Parsed p = parse(data, storage->nbytes(), file);
  StateDict out;
  for (size_t i = 0; i < p.header.tensors.size(); ++i) {
    const TensorInfo& info = p.header.tensors[i];
    const std::string what = fmt::format("{}: tensor '{}'", file, detail::printable(info.name));
    Tensor flat = detail::load_flat(storage, p.header.data_start + info.begin,
                                    shape_numel(info.shape), p.stored[i], convert_to, what);
    out.emplace(info.name, flat.view(info.shape));
  }
  return out;
}

int dtype_rank(DType t) {  // the reference writer's ordering: larger alignment first
  switch (t) {
    case DType::i64: return 9;
    case DType::f32: return 7;
    case DType::i32: return 6;
    case DType::bf16: return 5;
    case DType::f16: return 4;
    case DType::i8: return 2;
    case DType::u8: return 1;
    case DType::boolean: return 0;
  }
  return 0;
}

std::string_view st_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::bf16: return "BF16";
    case DType::f16: return "F16";
    case DType::i8: return "I8";
    case DType::u8: return "U8";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::boolean: return "BOOL";
  }
  return "?";
}

std::string json_string(const std::string& s, const std::string& what) {
  try {
    return json(s).dump();
  } catch (const json::exception&) {
    fail<IoError>("cannot save {} '{}': not valid UTF-8", what, detail::printable(s));
  }
}

void write_all(int fd, const char* p, size_t n, const std::string& tmp) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail<IoError>("writing '{}' failed: {}", tmp, std::strerror(errno));
    p += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

SafetensorsHeader parse_safetensors(const uint8_t* data, size_t size, const std::string& what) {
  return parse(data, size, what).header;
}

std::vector<TensorInfo> parse_safetensors_header(const uint8_t* data, size_t size) {
  return parse(data, size, "<memory>").header.tensors;
}

std::vector<TensorInfo> read_safetensors_header(const std::string& path) {
  auto storage = detail::map_file(path);  // lazy: only the header's pages are read
  return parse(static_cast<const uint8_t*>(storage->data()), storage->nbytes(), path)
      .header.tensors;
}

StateDict load_safetensors(const std::string& path, std::optional<DType> convert_to) {
  return load_from_storage(detail::map_file(path), path, convert_to);
}

StateDict load_safetensors_buffer(const uint8_t* data, size_t size,
                                  std::optional<DType> convert_to) {
  return load_from_storage(detail::copy_to_storage(data, size), "<memory>", convert_to);
}

std::string serialize_safetensors(const StateDict& tensors,
                                  const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<const std::string*, Tensor>> items;
  for (const auto& [name, t] : tensors) {
    LMF_CHECK(t.defined(), IoError, "cannot save tensor '{}': it is undefined", name);
    LMF_CHECK(t.device() == Device::cpu, IoError, "cannot save tensor '{}': it is on {}", name,
              device_name(t.device()));
    items.emplace_back(&name, t.contiguous());
  }
  std::stable_sort(items.begin(), items.end(), [](const auto& a, const auto& b) {
    return dtype_rank(a.second.dtype()) > dtype_rank(b.second.dtype());
  });
  std::string header = "{";
  const auto& meta = metadata.empty() ? std::map<std::string, std::string>{{"format", "pt"}}
                                      : metadata;
  header += "\"__metadata__\":{";
  bool first = true;
  for (const auto& [k, v] : meta) {
    if (!first) header += ',';
    first = false;
    header += json_string(k, "metadata key") + ':' + json_string(v, "metadata value");
  }
  header += '}';
  size_t offset = 0;
  for (const auto& [name, t] : items) {
    header += ',' + json_string(*name, "tensor name");
    header += fmt::format(":{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
                          st_name(t.dtype()), fmt::join(t.shape(), ","), offset,
                          offset + t.nbytes());
    offset += t.nbytes();
  }
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string out;
  out.reserve(8 + header.size() + offset);
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out += static_cast<char>((n >> (8 * i)) & 0xff);
  out += header;
  for (const auto& [name, t] : items)
    out.append(static_cast<const char*>(t.data_ptr()), t.nbytes());
  return out;
}

void save_safetensors(const std::string& path, const StateDict& tensors,
                      const std::map<std::string, std::string>& metadata) {
  const std::string bytes = serialize_safetensors(tensors, metadata);
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail<IoError>("cannot create '{}': {}", tmp, std::strerror(errno));
  try {
    write_all(fd, bytes.data(), bytes.size(), tmp);
    if (::fsync(fd) != 0) fail<IoError>("fsync of '{}' failed: {}", tmp, std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail<IoError>("cannot rename '{}' to '{}': {}", tmp, path, std::strerror(err));
  }
  // Persist the rename itself.
  const auto dir = std::filesystem::path(path).parent_path();
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace lmf::io
