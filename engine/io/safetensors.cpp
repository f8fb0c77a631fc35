// safetensors.cpp: the safetensors writer and reader (format and rules in safetensors.h).
//
// Reading happens in three steps, so a damaged file is refused before any tensor memory
// is allocated: (1) the 8-byte size and the header bytes, (2) the header parsed as JSON
// and every entry validated (dtype, shape, offsets, size), (3) the offsets checked to tile
// the data section, and only then (4) each tensor read straight into its own storage.
#include "safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "cuda_backend.h"
#include "error.h"

namespace hkt::safetensors {

// The data section is little-endian and we copy it byte for byte into tensor storage
// (and back); a big-endian host would have to swap every element.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// A note on style: check(condition, message) builds its message even when the condition
// holds. Where a check runs once per entry or per parser event, or its message reads
// something that exists only on failure, we write `if (bad) throw Error(...)` instead.

constexpr std::size_t kSizeFieldBytes = 8;   // the u64 header size at the start of the file
constexpr std::size_t kHeaderAlignment = 8;  // we pad the header to this many bytes
constexpr const char* kMetadataKey = "__metadata__";
// Containers in a valid header: the top object, an entry (or __metadata__) object, and
// a shape or data_offsets array. Deeper nesting is refused while parsing.
constexpr std::size_t kMaxNesting = 3;
// No array in a valid header has more elements than a shape of the largest rank (8);
// refusing longer ones while parsing keeps a hostile header from building a huge tree.
constexpr std::size_t kMaxArrayElements = static_cast<std::size_t>(kMaxRank);

// ---- messages -----------------------------------------------------------------------

/// `text` fit for a one-line message: control bytes shown as \xNN (a name read from a
/// file may hold a newline), and at most `max_bytes` bytes of it (cut at a UTF-8
/// character boundary), followed by "..." when cut. With `ascii_only`, bytes above 0x7f
/// are shown as \xNN too (for text that may hold invalid UTF-8, like the parser's).
std::string printable(const std::string& text, std::size_t max_bytes, bool ascii_only = false) {
  std::size_t cut = std::min(text.size(), max_bytes);
  while (cut > 0 && cut < text.size() && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  std::string out;
  for (std::size_t i = 0; i < cut; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f || (ascii_only && c > 0x7f)) {
      static const char* kHex = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (cut < text.size()) out += "...";
  return out;
}

/// 'name', as every message quotes a tensor name, a key or a dtype.
std::string quote(const std::string& name) {
  std::string out = "'";
  out += printable(name, 100);
  out += "'";
  return out;
}

std::string range_str(std::uint64_t begin, std::uint64_t end) {
  std::string out = "[";
  out += std::to_string(begin);
  out += ", ";
  out += std::to_string(end);
  out += "]";
  return out;
}

// ---- dtypes -------------------------------------------------------------------------

/// The safetensors code of each dtype hkt has (README "Format": F32, F64, I64 are
/// IEEE float32, float64 and two's-complement int64, little-endian).
struct DTypeCode {
  const char* code;
  DType dtype;
};
constexpr DTypeCode kDTypeCodes[] = {{"F32", DType::Float32}, {"F64", DType::Float64}, {"I64", DType::Int64}};

std::string dtype_code(DType dtype) {
  for (const auto& entry : kDTypeCodes)
    if (entry.dtype == dtype) return entry.code;
  throw Error("safetensors: dtype " + dtype_name(dtype) + " has no safetensors code");
}

std::optional<DType> parse_dtype_code(const std::string& code) {
  for (const auto& entry : kDTypeCodes)
    if (code == entry.code) return entry.dtype;
  return std::nullopt;
}

// ---- writing ------------------------------------------------------------------------

/// True when `text` can go into a JSON string: nlohmann::json refuses to dump invalid
/// UTF-8 (and the reference reader would refuse to read it).
bool is_valid_utf8(const std::string& text) {
  try {
    (void)json(text).dump();
    return true;
  } catch (const json::exception&) {
    return false;
  }
}

/// Checks everything save() can check before it creates a file.
void check_tensors_to_save(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                           const std::map<std::string, std::string>& metadata) {
  const std::string where = "save " + path + ": ";
  std::unordered_set<std::string> seen;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, tensor] = tensors[i];
    if (name.empty()) throw Error(where + "tensor #" + std::to_string(i) + " has an empty name");
    const std::string what = where + "tensor " + quote(name) + ": ";
    if (name == kMetadataKey) throw Error(what + "the name is reserved for the metadata");
    if (!is_valid_utf8(name)) throw Error(what + "the name is not valid UTF-8");
    if (!seen.insert(name).second) throw Error(what + "the name is given twice");
    if (!tensor.defined()) throw Error(what + "the tensor is undefined");
    if (tensor.device() != Device::CPU)
      throw Error(what + "the tensor is on " + device_name(tensor.device()) +
                  "; save takes CPU tensors (use .to(Device::CPU))");
    (void)dtype_code(tensor.dtype());
  }
  for (const auto& [key, value] : metadata) {
    if (!is_valid_utf8(key)) throw Error(where + "metadata key " + quote(key) + " is not valid UTF-8");
    if (!is_valid_utf8(value)) throw Error(where + "metadata value of " + quote(key) + " is not valid UTF-8");
  }
}

/// The header text: {"__metadata__": {...}, name: {"dtype", "shape", "data_offsets"}, ...}
/// in the given order, each tensor's bytes right after the previous one's, padded with
/// spaces to a multiple of 8 bytes (so the data section starts 8-byte aligned).
std::string build_header(const std::vector<std::pair<std::string, Tensor>>& tensors,
                         const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();  // keeps insertion order
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    const std::uint64_t nbytes = tensor.nbytes();
    header[name] = {
        {"dtype", dtype_code(tensor.dtype())}, {"shape", tensor.shape()}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text = header.dump();
  text.append((kHeaderAlignment - text.size() % kHeaderAlignment) % kHeaderAlignment, ' ');
  return text;
}

/// The system's reason for the last failed call.
std::string last_os_error() { return std::strerror(errno); }

/// Writes all `size` bytes to `fd` (write() may write fewer bytes than asked, or be
/// interrupted by a signal before writing any). Throws hkt::Error with the reason.
void write_all(int fd, const void* data, std::size_t size, const std::string& what) {
  const auto* bytes = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t written = ::write(fd, bytes, size);
    if (written < 0 && errno == EINTR) continue;
    if (written < 0) throw Error(what + ": " + last_os_error());
    if (written == 0) throw Error(what + ": nothing written");
    bytes += written;
    size -= static_cast<std::size_t>(written);
  }
}

/// Writes the whole file to `fd` and flushes it to the disk.
void write_contents(int fd, const std::string& path, const std::string& tmp, const std::string& header,
                    const std::vector<std::pair<std::string, Tensor>>& tensors) {
  const std::string what = "save " + path + ": cannot write " + tmp;
  unsigned char size_field[kSizeFieldBytes];
  for (std::size_t i = 0; i < kSizeFieldBytes; ++i)
    size_field[i] = static_cast<unsigned char>(header.size() >> (8 * i));
  write_all(fd, size_field, kSizeFieldBytes, what);
  write_all(fd, header.data(), header.size(), what);
  for (const auto& [name, tensor] : tensors) write_all(fd, tensor.raw_data(), tensor.nbytes(), what);
  // Without fsync a crash soon after the rename could leave the new name pointing at
  // data that never reached the disk.
  if (::fsync(fd) != 0) throw Error(what + ": fsync: " + last_os_error());
}

// ---- reading: header ----------------------------------------------------------------

/// One tensor entry of the header, validated.
struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  std::uint64_t begin;  // data_offsets, relative to the data section
  std::uint64_t end;
};

/// The size of the file at `path`; hkt::Error unless it is a regular file.
std::uint64_t regular_file_size(const std::string& path) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  check(!ec && fs::exists(status), path + ": cannot open the file" + (ec ? ": " + ec.message() : std::string()));
  check(fs::is_regular_file(status), path + ": is not a regular file");
  const std::uint64_t size = fs::file_size(path, ec);
  check(!ec, path + ": cannot read the file size: " + ec.message());
  return size;
}

/// Reads exactly `size` bytes at the stream's position into `out`, or throws naming
/// what was being read and the file offset where the file ended.
void read_exact(std::ifstream& in, const std::string& path, void* out, std::uint64_t size, std::uint64_t offset,
                const std::string& what) {
  in.read(static_cast<char*>(out), static_cast<std::streamsize>(size));
  const auto got = static_cast<std::uint64_t>(in.gcount());
  if (got != size)
    throw Error(path + ": the file ended at byte offset " + std::to_string(offset + got) + " while reading " + what +
                " (" + std::to_string(size) + " bytes from offset " + std::to_string(offset) + ")");
}

/// Tracks the containers open while parsing, to refuse duplicate keys (nlohmann::json,
/// like most parsers, would silently keep one of them), nesting deeper than a header
/// has, and arrays longer than a shape can be.
class HeaderGuard {
 public:
  explicit HeaderGuard(const std::string& path) : path_(path) {}

  bool operator()(int /*depth*/, json::parse_event_t event, json& parsed) {
    using E = json::parse_event_t;
    switch (event) {
      case E::object_start:
      case E::array_start:
        count_element();
        if (open_.size() >= kMaxNesting)
          throw Error(where() + "nested deeper than a header can be (" + std::to_string(kMaxNesting) + " levels)");
        open_.push_back(Container{event == E::object_start, 0, {}});
        break;
      case E::object_end:
      case E::array_end:
        open_.pop_back();
        break;
      case E::key:
        on_key(parsed.get_ref<const std::string&>());
        break;
      case E::value:
        count_element();
        break;
    }
    return true;  // keep every value
  }

 private:
  struct Container {
    bool is_object;
    std::size_t elements;                  // values seen, for arrays
    std::unordered_set<std::string> keys;  // keys seen, for objects
  };

  void on_key(const std::string& key) {
    Container& object = open_.back();
    if (open_.size() == 1) entry_ = key;
    if (object.keys.insert(key).second) return;
    if (open_.size() > 1) throw Error(where() + "the key " + quote(key) + " appears twice");
    throw Error(path_ + ": " + (key == kMetadataKey ? std::string("'__metadata__'") : "tensor " + quote(key)) +
                " appears twice in the header");
  }

  void count_element() {
    if (open_.empty() || open_.back().is_object) return;
    if (++open_.back().elements > kMaxArrayElements)
      throw Error(where() + "an array has more than " + std::to_string(kMaxArrayElements) + " elements");
  }

  /// "path: header entry 'name': " inside an entry, "path: header: " outside.
  std::string where() const {
    return open_.size() >= 2 ? path_ + ": header entry " + quote(entry_) + ": " : path_ + ": header: ";
  }

  std::string path_;
  std::vector<Container> open_;
  std::string entry_;  // the top-level key whose value is being parsed
};

/// Parses the header text (which starts at file offset 8) into a JSON object.
json parse_header(const std::string& path, const std::string& text) {
  check(!text.empty() && text[0] == '{',
        path + ": the header (file byte offset 8) must begin with '{'" +
            (text.empty() ? std::string(", but it is empty") : ", got " + quote(text.substr(0, 1))));
  HeaderGuard guard(path);
  try {
    return json::parse(text.begin(), text.end(), std::ref(guard));
  } catch (const json::parse_error& e) {
    // e.byte counts the characters read, the bad one included (1-based).
    const std::uint64_t offset = kSizeFieldBytes + (e.byte > 0 ? e.byte - 1 : 0);
    std::string reason = e.what();
    const auto bracket = reason.find("] ");  // drop nlohmann's "[json.exception.parse_error.101] "
    if (bracket != std::string::npos) reason = reason.substr(bracket + 2);
    throw Error(path + ": the header is not valid JSON (file byte offset " + std::to_string(offset) +
                "): " + printable(reason, 300, true));
  } catch (const json::exception& e) {
    throw Error(path + ": the header is not valid JSON: " + printable(e.what(), 300, true));
  }
}

/// The "__metadata__" object: string keys to string values.
std::map<std::string, std::string> parse_metadata(const std::string& path, const json& value) {
  if (!value.is_object()) throw Error(path + ": '__metadata__' must be an object of strings, got " + value.type_name());
  std::map<std::string, std::string> metadata;
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string())
      throw Error(path + ": '__metadata__' value of " + quote(key) + " must be a string, got " + item.type_name());
    metadata[key] = item.get<std::string>();
  }
  return metadata;
}

/// An array of non-negative integers (shape or data_offsets).
std::vector<std::uint64_t> parse_uint_array(const std::string& what, const json& value, const std::string& field) {
  if (!value.is_array())
    throw Error(what + "'" + field + "' must be an array of non-negative integers, got " + value.type_name());
  std::vector<std::uint64_t> numbers;
  for (const auto& item : value) {
    if (!item.is_number_unsigned())
      throw Error(what + "'" + field + "' must hold non-negative integers, got " + printable(item.dump(), 40));
    numbers.push_back(item.get<std::uint64_t>());
  }
  return numbers;
}

Shape parse_shape(const std::string& what, const json& value) {
  Shape shape;
  for (std::uint64_t size : parse_uint_array(what, value, "shape")) {
    if (size > (std::uint64_t{1} << 60)) throw Error(what + "shape size " + std::to_string(size) + " is too large");
    shape.push_back(static_cast<std::int64_t>(size));
  }
  try {
    validate_shape("shape", shape);  // the engine's limits: rank <= 8, at most 2^60 elements
  } catch (const Error& e) {
    throw Error(what + e.what());
  }
  return shape;
}

/// Validates one tensor entry of the header on its own (the tiling is checked later).
Entry parse_entry(const std::string& path, const std::string& name, const json& value, std::uint64_t data_bytes) {
  if (name.empty()) throw Error(path + ": a tensor has an empty name");
  const std::string what = path + ": tensor " + quote(name) + ": ";
  if (!value.is_object())
    throw Error(what + "the entry must be an object {\"dtype\", \"shape\", \"data_offsets\"}, got " +
                value.type_name());
  for (const auto& [key, item] : value.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets") throw Error(what + "unknown field " + quote(key));
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!value.contains(field)) throw Error(what + "missing field '" + field + "'");

  const json& code = value["dtype"];
  if (!code.is_string()) throw Error(what + "'dtype' must be a string, got " + code.type_name());
  const auto dtype = parse_dtype_code(code.get<std::string>());
  if (!dtype)
    throw Error(what + "dtype " + quote(code.get<std::string>()) + " is not supported (hkt reads F32, F64 and I64)");

  Entry entry{name, *dtype, parse_shape(what, value["shape"]), 0, 0};
  const auto offsets = parse_uint_array(what, value["data_offsets"], "data_offsets");
  if (offsets.size() != 2)
    throw Error(what + "'data_offsets' must be [begin, end], got " + std::to_string(offsets.size()) + " numbers");
  entry.begin = offsets[0];
  entry.end = offsets[1];
  const std::string offsets_text = "data_offsets " + range_str(entry.begin, entry.end);
  if (entry.begin > entry.end) throw Error(what + offsets_text + " end before they begin");

  // numel <= 2^60 (validate_shape), so numel * 8 fits in 64 bits.
  const std::uint64_t needed = static_cast<std::uint64_t>(hkt::numel(entry.shape)) * dtype_size(entry.dtype);
  if (entry.end - entry.begin != needed)
    throw Error(what + offsets_text + " hold " + std::to_string(entry.end - entry.begin) + " bytes, shape " +
                shape_str(entry.shape) + " " + dtype_name(entry.dtype) + " needs " + std::to_string(needed));
  if (entry.end > data_bytes)
    throw Error(what + offsets_text + " go past the end of the data section (" + std::to_string(data_bytes) +
                " bytes)");
  return entry;
}

/// Requires the entries (sorted by offset) to cover [0, data_bytes) exactly, each one
/// starting where the previous one ended. `data_start` is the file offset of byte 0.
void check_tiling(const std::string& path, const std::vector<Entry>& entries, std::uint64_t data_bytes,
                  std::uint64_t data_start) {
  auto bytes_str = [&](std::uint64_t begin, std::uint64_t end) {
    return "data bytes [" + std::to_string(begin) + ", " + std::to_string(end) + ") (file bytes [" +
           std::to_string(data_start + begin) + ", " + std::to_string(data_start + end) + "))";
  };
  std::uint64_t covered = 0;  // data bytes [0, covered) belong to the entries seen so far
  const Entry* previous = nullptr;
  for (const Entry& entry : entries) {
    if (entry.begin > covered)
      throw Error(path + ": " + bytes_str(covered, entry.begin) + " belong to no tensor (a hole before tensor " +
                  quote(entry.name) + ")");
    if (entry.begin < covered)  // then covered > 0, so there is a previous entry
      throw Error(path + ": tensor " + quote(entry.name) + ": data_offsets " + range_str(entry.begin, entry.end) +
                  " overlap tensor " + quote(previous->name) + " (data_offsets " +
                  range_str(previous->begin, previous->end) + ")");
    covered = entry.end;
    previous = &entry;
  }
  if (covered != data_bytes)
    throw Error(path + ": " + bytes_str(covered, data_bytes) + " after the last tensor belong to no tensor");
}

/// Copies `src` into the storage of `dst` (same shape and dtype), on either device.
void copy_into(const Tensor& dst, const Tensor& src) {
  const Tensor host = src.to(Device::CPU);
  if (dst.device() == Device::CUDA)
    cuda::copy_host_to_device(dst.raw_data(), host.raw_data(), host.nbytes());
  else if (host.nbytes() > 0)
    std::memmove(dst.raw_data(), host.raw_data(), host.nbytes());  // memmove: both may be one storage
}

}  // namespace

// ---- public API -----------------------------------------------------------------------

void save(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
          const std::map<std::string, std::string>& metadata) {
  check_tensors_to_save(path, tensors, metadata);
  const std::string header = build_header(tensors, metadata);
  const std::string tmp = path + ".tmp";
  // O_NOFOLLOW: never write through a symbolic link someone left at the temporary name.
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  check(fd >= 0, "save " + path + ": cannot create " + tmp + ": " + last_os_error());
  try {
    write_contents(fd, path, tmp, header, tensors);
    const int closed = ::close(fd);
    fd = -1;
    check(closed == 0, "save " + path + ": cannot write " + tmp + ": close: " + last_os_error());
    std::error_code ec;
    fs::rename(tmp, path, ec);  // atomic: readers see the old file or the new one
    check(!ec, "save " + path + ": cannot rename " + tmp + " to " + path + ": " + ec.message());
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());  // we created it, so it is ours to remove
    throw;
  }
}

namespace {

// load() and load_metadata(): the header always, validated whole; the tensors' data only
// with `with_tensors`.
File read_file(const std::string& path, bool with_tensors) {
  const std::uint64_t file_bytes = regular_file_size(path);
  check(file_bytes >= kSizeFieldBytes,
        path + ": the file has " + std::to_string(file_bytes) + " bytes, fewer than the 8-byte header size");
  std::ifstream in(path, std::ios::binary);
  check(in.good(), path + ": cannot open the file");

  // (1) the header size, little-endian, and the header bytes.
  unsigned char size_field[kSizeFieldBytes];
  read_exact(in, path, size_field, kSizeFieldBytes, 0, "the header size");
  std::uint64_t header_bytes = 0;
  for (std::size_t i = 0; i < kSizeFieldBytes; ++i) header_bytes |= std::uint64_t{size_field[i]} << (8 * i);
  check(header_bytes <= kMaxHeaderBytes, path + ": header size " + std::to_string(header_bytes) +
                                             " (bytes 0-7) exceeds the limit of " + std::to_string(kMaxHeaderBytes) +
                                             " bytes");
  check(header_bytes <= file_bytes - kSizeFieldBytes, path + ": header size " + std::to_string(header_bytes) +
                                                          " (bytes 0-7) reaches beyond the end of the file (" +
                                                          std::to_string(file_bytes) + " bytes)");
  std::string text(header_bytes, '\0');
  read_exact(in, path, text.data(), header_bytes, kSizeFieldBytes, "the header");
  const std::uint64_t data_start = kSizeFieldBytes + header_bytes;
  const std::uint64_t data_bytes = file_bytes - data_start;

  // (2) every entry on its own. json's object iterates in name order, which is then the
  // order among zero-size tensors at one offset (stable_sort keeps it).
  const json header = parse_header(path, text);
  File file;
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == kMetadataKey)
      file.metadata = parse_metadata(path, value);
    else
      entries.push_back(parse_entry(path, name, value, data_bytes));
  }

  // (3) together, the entries must tile the data section.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  check_tiling(path, entries, data_bytes, data_start);
  if (!with_tensors) return file;

  // (4) the data, in file order, straight into each tensor's storage.
  for (const Entry& entry : entries) {
    Tensor tensor;
    try {
      tensor = Tensor::empty(entry.shape, entry.dtype);
    } catch (const Error& e) {
      throw Error(path + ": tensor " + quote(entry.name) + ": " + e.what());
    }
    read_exact(in, path, tensor.raw_data(), tensor.nbytes(), data_start + entry.begin, "tensor " + quote(entry.name));
    file.tensors.emplace_back(entry.name, std::move(tensor));
  }
  return file;
}

}  // namespace

File load(const std::string& path) { return read_file(path, true); }

std::map<std::string, std::string> load_metadata(const std::string& path) { return read_file(path, false).metadata; }

void load_into(const File& file, const std::vector<std::pair<std::string, Tensor>>& params, bool allow_extra) {
  std::unordered_map<std::string, const Tensor*> in_file;
  for (const auto& [name, tensor] : file.tensors) {
    if (!in_file.emplace(name, &tensor).second)
      throw Error("load_into: tensor " + quote(name) + " appears twice in the file");
    if (!tensor.defined()) throw Error("load_into: tensor " + quote(name) + " in the file is undefined");
  }

  // Every problem is collected first, so one message lists them all and nothing is
  // copied unless everything matches.
  std::vector<std::string> problems;
  std::unordered_set<std::string> wanted;
  for (const auto& [name, param] : params) {
    const std::string tensor = "tensor " + quote(name);
    if (!wanted.insert(name).second) {
      problems.push_back(tensor + " is given twice in params");
    } else if (!param.defined()) {
      problems.push_back(tensor + " is undefined in params");
    } else if (auto it = in_file.find(name); it == in_file.end()) {
      problems.push_back(tensor + " is missing from the file");
    } else if (it->second->shape() != param.shape()) {
      problems.push_back(tensor + ": shape " + shape_str(it->second->shape()) + " in the file vs " +
                         shape_str(param.shape()) + " in params");
    } else if (it->second->dtype() != param.dtype()) {
      problems.push_back(tensor + ": dtype " + dtype_name(it->second->dtype()) + " in the file vs " +
                         dtype_name(param.dtype()) + " in params");
    }
  }
  if (!allow_extra)
    for (const auto& [name, tensor] : file.tensors)
      if (!wanted.count(name)) problems.push_back("unexpected tensor " + quote(name) + " in the file");

  if (!problems.empty()) {
    constexpr std::size_t kShown = 10;  // a whole model's worth of names would be unreadable
    std::string message = "load_into: ";
    for (std::size_t i = 0; i < std::min(problems.size(), kShown); ++i) message += (i ? "; " : "") + problems[i];
    if (problems.size() > kShown) message += "; and " + std::to_string(problems.size() - kShown) + " more";
    throw Error(message);
  }
  for (const auto& [name, param] : params) copy_into(param, *in_file.at(name));
}

}  // namespace hkt::safetensors
