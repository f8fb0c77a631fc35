// test_safetensors.cpp: checkpoints in the safetensors format (engine/io/safetensors.h):
// bit-exact round trips, the byte layout written (checked by hand), the atomic write,
// files written by / for the reference package (tests/data/safetensors, made by
// tools/make_safetensors_fixtures.py), every malformed header, and load_into.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "test_helpers.h"

using namespace hkt;
using namespace hkt::test;
namespace st = hkt::safetensors;
namespace fs = std::filesystem;

namespace {

using Named = std::vector<std::pair<std::string, Tensor>>;

// TempDir: tests/test_helpers.h

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// The 8-byte little-endian header size `n`.
std::string size_field(std::uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out;
}

/// A file made by hand: size field, `header` as given, `data_bytes` bytes of zeros.
std::string raw_file(const std::string& header, std::size_t data_bytes) {
  return size_field(header.size()) + header + std::string(data_bytes, '\0');
}

/// A float32 tensor holding exactly `values` (no rounding through double).
Tensor f32(const std::vector<float>& values, const Shape& shape) {
  Tensor t = Tensor::empty(shape, DType::Float32);
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(float));
  return t;
}

/// A float32 whose bits are `bits` (for NaN payloads).
float f32_bits(std::uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

/// Same dtype, shape and bytes (so -0.0 != 0.0 and a NaN payload must survive).
void require_bit_equal(const Tensor& actual, const Tensor& expected) {
  REQUIRE(actual.dtype() == expected.dtype());
  REQUIRE(actual.shape() == expected.shape());
  REQUIRE(actual.device() == Device::CPU);
  CHECK(std::memcmp(actual.raw_data(), expected.raw_data(), expected.nbytes()) == 0);
}

std::vector<std::string> names_of(const Named& tensors) {
  std::vector<std::string> names;
  for (const auto& [name, t] : tensors) names.push_back(name);
  return names;
}

/// The header text (between the size field and the data) of a file's bytes.
std::string header_of(const std::string& bytes) {
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= std::uint64_t{static_cast<unsigned char>(bytes[i])} << (8 * i);
  return bytes.substr(8, n);
}

/// The tensors tools/make_safetensors_fixtures.py calls HKT_WRITTEN, in its order; the
/// committed written_by_hkt.safetensors is their save(), checked by that script.
Named hkt_written() {
  return {{"z.last", f32({1.5f, -0.0f, std::numeric_limits<float>::infinity(), 1e-40f}, {2, 2})},
          {"a.first", Tensor::from_indices({(std::int64_t{1} << 62) + 3, -1, 0}, {3})},
          {"mid", Tensor::scalar(-2.75, DType::Float64)},
          {"none", Tensor::zeros({2, 0}, DType::Float64)}};
}
const std::map<std::string, std::string> kHktWrittenMetadata{{"step", "7"}, {"model", "tiny"}};

std::string fixture(const std::string& name) { return fixture_dir() + "/safetensors/" + name; }

/// A valid entry for a hand-made header.
std::string entry(const std::string& dtype, const std::string& shape, std::uint64_t begin, std::uint64_t end) {
  return "{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" + std::to_string(begin) + "," +
         std::to_string(end) + "]}";
}

}  // namespace

// ---- writing and reading back ---------------------------------------------------------

TEST_CASE("safetensors: round trip of every dtype is bit-exact", "[safetensors]") {
  TempDir dir("safetensors-roundtrip");
  const float inf = std::numeric_limits<float>::infinity();
  const Named tensors = {
      // A NaN with a payload, both zeros, both infinities, a subnormal, the largest float.
      {"f32", f32({f32_bits(0x7fc00001u), -0.0f, 0.0f, inf, -inf, 1e-40f, 3.4028235e38f, 0.1f}, {2, 4})},
      {"f64.scalar", Tensor::scalar(-0.1, DType::Float64)},
      {"f64", f64({1e-310, -2.0, 1.0 / 3.0, 6.02e23}, {2, 1, 2})},
      {"i64", Tensor::from_indices({std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max(),
                                    (std::int64_t{1} << 53) + 1, -7},
                                   {4})},
      {"zero.f32", Tensor::zeros({0, 4})},
      {"zero.i64", Tensor::from_indices({}, {3, 0})},
      {"i64.scalar", Tensor::from_indices({42}, {})},
  };
  const std::string path = dir.file("ckpt.safetensors");
  st::save(path, tensors);
  const st::File file = st::load(path);
  // The given order is the order of the data offsets, which load returns.
  CHECK(names_of(file.tensors) == names_of(tensors));
  REQUIRE(file.tensors.size() == tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    INFO("tensor " << tensors[i].first);
    require_bit_equal(file.tensors[i].second, tensors[i].second);
  }
  CHECK(file.metadata.empty());
  // 32 + 8 + 32 + 32 + 0 + 0 + 8 data bytes after the header.
  const std::string bytes = read_bytes(path);
  CHECK(bytes.size() == 8 + header_of(bytes).size() + 112);
  CHECK_FALSE(fs::exists(path + ".tmp"));
}

TEST_CASE("safetensors: a file with no tensors round trips", "[safetensors]") {
  TempDir dir("safetensors-empty");
  const std::string path = dir.file("none.safetensors");
  st::save(path, {});
  // "{}" padded to 8 bytes: 2 + 6 spaces, no data.
  CHECK(read_bytes(path) == size_field(8) + "{}      ");
  const st::File file = st::load(path);
  CHECK(file.tensors.empty());
  CHECK(file.metadata.empty());
}

TEST_CASE("safetensors: the header is padded to a multiple of 8 and is valid JSON", "[safetensors]") {
  TempDir dir("safetensors-header");
  SECTION("the exact bytes of a small file") {
    const std::string path = dir.file("a.safetensors");
    st::save(path, {{"a", f32({1.0f, 2.0f, 3.0f}, {3})}, {"b", Tensor::from_indices({-2}, {1})}});
    // By hand: the JSON below is 110 bytes; padded to 112 with 2 spaces. Then 1.0f, 2.0f,
    // 3.0f little-endian (0x3f800000, 0x40000000, 0x40400000) and int64 -2.
    const std::string json_text =
        R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"b":{"dtype":"I64","shape":[1],"data_offsets":[12,20]}})";
    REQUIRE(json_text.size() == 110);
    const std::string data("\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40\xfe\xff\xff\xff\xff\xff\xff\xff", 20);
    CHECK(read_bytes(path) == size_field(112) + json_text + "  " + data);
  }
  SECTION("every name length gives a padded header that parses") {
    for (std::size_t length = 1; length <= 9; ++length) {
      INFO("name length " << length);
      const std::string path = dir.file("n.safetensors");
      const std::string name(length, 'w');
      st::save(path, {{name, Tensor::zeros({2, 3}, DType::Float64)}});
      const std::string header = header_of(read_bytes(path));
      CHECK(header.size() % 8 == 0);
      const std::size_t last = header.find_last_not_of(' ');
      CHECK(header[0] == '{');
      CHECK(header[last] == '}');
      CHECK(header.size() - 1 - last < 8);  // at most 7 spaces of padding
      const auto parsed = nlohmann::json::parse(header);
      CHECK(parsed[name]["dtype"] == "F64");
      CHECK(parsed[name]["shape"] == nlohmann::json::array({2, 3}));
      CHECK(parsed[name]["data_offsets"] == nlohmann::json::array({0, 48}));
    }
  }
}

TEST_CASE("safetensors: metadata round trips", "[safetensors]") {
  TempDir dir("safetensors-metadata");
  const std::string path = dir.file("m.safetensors");
  const std::map<std::string, std::string> metadata{
      {"epoch", "3"}, {"config", R"({"d_model": 64})"}, {"note", "line 1\nline 2 \"quoted\" h\xc3\xa9"}, {"empty", ""}};
  st::save(path, {{"w", Tensor::ones({2})}}, metadata);
  const st::File file = st::load(path);
  CHECK(file.metadata == metadata);
  CHECK(st::load_metadata(path) == metadata);  // the header alone, the same metadata
  const auto header = nlohmann::json::parse(header_of(read_bytes(path)));
  CHECK(header["__metadata__"]["epoch"] == "3");
  // Without metadata there is no "__metadata__" key (as the reference writer does).
  st::save(path, {{"w", Tensor::ones({2})}});
  CHECK_FALSE(nlohmann::json::parse(header_of(read_bytes(path))).contains("__metadata__"));
}

// ---- the atomic write ---------------------------------------------------------------

TEST_CASE("safetensors: a failed save into a missing folder leaves no file", "[safetensors]") {
  TempDir dir("safetensors-nofolder");
  const std::string path = dir.file("no_such_folder/ckpt.safetensors");
  require_error(
      [&] {
        st::save(path, {{"w", Tensor::ones({2})}});
      },
      "save " + path + ": cannot create " + path + ".tmp: No such file or directory");
  CHECK_FALSE(fs::exists(path));
  CHECK_FALSE(fs::exists(path + ".tmp"));
}

TEST_CASE("safetensors: a failed save leaves an existing file intact", "[safetensors]") {
  TempDir dir("safetensors-intact");
  const std::string path = dir.file("ckpt.safetensors");
  st::save(path, {{"old", Tensor::ones({3})}});
  const std::string before = read_bytes(path);

  SECTION("the temporary file cannot be created") {
    fs::create_directory(path + ".tmp");  // something is in the way
    require_error([&] { st::save(path, {{"new", Tensor::zeros({5})}}); }, "cannot create " + path + ".tmp");
    CHECK(read_bytes(path) == before);
    CHECK(fs::is_directory(path + ".tmp"));  // not ours: left alone
  }
  SECTION("the disk fills while writing") {
    // A file size limit of 4096 bytes makes write() fail with EFBIG half way through a
    // 64 KB tensor (SIGXFSZ ignored so the failure is an error code, not a signal).
    struct rlimit saved;
    REQUIRE(getrlimit(RLIMIT_FSIZE, &saved) == 0);
    struct rlimit small = saved;
    small.rlim_cur = 4096;
    auto* old_handler = signal(SIGXFSZ, SIG_IGN);
    REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
    std::string message;
    try {
      st::save(path, {{"new", Tensor::zeros({16384})}});
    } catch (const Error& e) {
      message = e.what();
    }
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, old_handler);
    INFO("message: " << message);
    CHECK(message.find("save " + path + ": cannot write " + path + ".tmp: File too large") != std::string::npos);
    CHECK(read_bytes(path) == before);
    CHECK_FALSE(fs::exists(path + ".tmp"));
  }
  SECTION("a bad tensor list is refused before any file is touched") {
    require_error(
        [&] {
          st::save(path, {{"a", Tensor::ones({1})}, {"a", Tensor::ones({1})}});
        },
        "save " + path + ": tensor 'a': the name is given twice");
    require_error([&] { st::save(path, {{"", Tensor::ones({1})}}); }, "save " + path + ": tensor #0 has an empty name");
    require_error(
        [&] {
          st::save(path, {{"__metadata__", Tensor::ones({1})}});
        },
        "tensor '__metadata__': the name is reserved for the metadata");
    require_error([&] { st::save(path, {{"u", Tensor()}}); }, "tensor 'u': the tensor is undefined");
    require_error([&] { st::save(path, {{"bad\xff", Tensor::ones({1})}}); }, "the name is not valid UTF-8");
    require_error(
        [&] {
          st::save(path, {{"w", Tensor::ones({1})}}, {{"k", "\xc3"}});
        },
        "metadata value of 'k' is not valid UTF-8");
    CHECK(read_bytes(path) == before);
    CHECK_FALSE(fs::exists(path + ".tmp"));
  }
  SECTION("a successful save replaces the file") {
    st::save(path, {{"new", Tensor::zeros({5})}});
    CHECK(names_of(st::load(path).tensors) == std::vector<std::string>{"new"});
    CHECK_FALSE(fs::exists(path + ".tmp"));
  }
}

// ---- the reference implementation -----------------------------------------------------

TEST_CASE("safetensors: a file written by the safetensors package loads with its values", "[safetensors]") {
  // tools/make_safetensors_fixtures.py wrote it with safetensors.numpy.save_file; the
  // values here are that script's REFERENCE, typed in again.
  const st::File file = st::load(fixture("reference.safetensors"));
  // The package lays tensors out 8-byte types first, then by name (its header:
  // ids [0,32], bias [32,56], scale [56,64], empty [64,64], weight [64,88]).
  CHECK(names_of(file.tensors) == std::vector<std::string>{"ids", "bias", "scale", "empty", "weight"});
  REQUIRE(file.tensors.size() == 5);
  require_bit_equal(file.tensors[0].second,
                    Tensor::from_indices({std::numeric_limits<std::int64_t>::min(),
                                          std::numeric_limits<std::int64_t>::max(), (std::int64_t{1} << 53) + 1, -7},
                                         {2, 2}));
  require_bit_equal(file.tensors[1].second, f64({0.1, -2.0, 1e-310}, {3}));
  require_bit_equal(file.tensors[2].second, Tensor::scalar(3.25, DType::Float64));
  require_bit_equal(file.tensors[3].second, Tensor::zeros({0, 3}));
  require_bit_equal(file.tensors[4].second, f32({0.5f, -1.25f, 3.0f, 0.1f, -0.0f, 1e-40f}, {2, 3}));
  CHECK(file.metadata ==
        std::map<std::string, std::string>{{"format", "np"}, {"note", "written by the safetensors package"}});
}

TEST_CASE("safetensors: our writer produces the file the safetensors package has read", "[safetensors]") {
  // written_by_hkt.safetensors was written by save() and then read by the reference
  // package (tools/make_safetensors_fixtures.py check: OK, every value as expected).
  // Writing the same tensors again must give the same bytes; if the header format is
  // changed on purpose, rewrite the fixture and run that check again.
  TempDir dir("safetensors-ours");
  const std::string path = dir.file("written_by_hkt.safetensors");
  st::save(path, hkt_written(), kHktWrittenMetadata);
  const std::string committed = read_bytes(fixture("written_by_hkt.safetensors"));
  REQUIRE_FALSE(committed.empty());
  CHECK(read_bytes(path) == committed);
  const st::File file = st::load(fixture("written_by_hkt.safetensors"));
  const Named expected = hkt_written();
  CHECK(names_of(file.tensors) == names_of(expected));
  for (std::size_t i = 0; i < expected.size(); ++i) require_bit_equal(file.tensors[i].second, expected[i].second);
  CHECK(file.metadata == kHktWrittenMetadata);
}

TEST_CASE("safetensors: a dtype hkt lacks is refused naming the tensor and dtype", "[safetensors]") {
  // half.safetensors: one float16 tensor 'h' written by the safetensors package.
  const std::string path = fixture("half.safetensors");
  require_error([&] { st::load(path); },
                path + ": tensor 'h': dtype 'F16' is not supported (hkt reads F32, F64 and I64)");
}

// ---- malformed files --------------------------------------------------------------------

TEST_CASE("safetensors: malformed sizes are refused", "[safetensors]") {
  TempDir dir("safetensors-sizes");
  auto refuses = [&](const std::string& bytes, const std::string& fragment) {
    const std::string path = dir.write("bad.safetensors", bytes);
    require_error([&] { st::load(path); }, path + ": " + fragment);
  };
  refuses("", "the file has 0 bytes, fewer than the 8-byte header size");
  refuses(std::string(7, '\0'), "the file has 7 bytes, fewer than the 8-byte header size");
  refuses(size_field(100) + std::string(20, ' '),
          "header size 100 (bytes 0-7) reaches beyond the end of the file (28 bytes)");
  refuses(size_field(100'000'001) + "{}", "header size 100000001 (bytes 0-7) exceeds the limit of 100000000 bytes");
  refuses(size_field(std::numeric_limits<std::uint64_t>::max()) + "{}",
          "header size 18446744073709551615 (bytes 0-7) exceeds the limit");
  // Exactly the limit is allowed by the limit, but here the file is too short.
  refuses(size_field(100'000'000) + "{}",
          "header size 100000000 (bytes 0-7) reaches beyond the end of the file (10 bytes)");
  refuses(size_field(0), "the header (file byte offset 8) must begin with '{', but it is empty");

  const std::string missing = dir.file("missing.safetensors");
  require_error([&] { st::load(missing); }, missing + ": cannot open the file");
  require_error([&] { st::load(dir.path.string()); }, dir.path.string() + ": is not a regular file");
}

TEST_CASE("safetensors: a header that is not valid JSON is refused with its byte offset", "[safetensors]") {
  TempDir dir("safetensors-json");
  auto refuses = [&](const std::string& header, const std::string& fragment) {
    const std::string path = dir.write("bad.safetensors", raw_file(header, 0));
    require_error([&] { st::load(path); }, path + ": " + fragment);
  };
  // 'x' is header byte 5, file byte 8 + 5 = 13.
  refuses(R"({"a":x})", "the header is not valid JSON (file byte offset 13): parse error at line 1, column 6");
  refuses(R"({"a": )", "the header is not valid JSON (file byte offset 14)");
  refuses("{\"a\xff\":1}", "the header is not valid JSON (file byte offset 11)");  // invalid UTF-8
  refuses(R"({} {})", "the header is not valid JSON (file byte offset 11)");
  refuses(R"([1, 2])", "the header (file byte offset 8) must begin with '{', got '['");
  refuses(R"( {})", "the header (file byte offset 8) must begin with '{', got ' '");
  refuses(R"({"a":{"dtype":"F32","shape":[[[1]]],"data_offsets":[0,0]}})",
          "header entry 'a': nested deeper than a header can be (3 levels)");
  refuses(R"({"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})",
          "header entry 'a': an array has more than 8 elements");
}

TEST_CASE("safetensors: bad tensor entries are refused naming the tensor", "[safetensors]") {
  TempDir dir("safetensors-entries");
  auto refuses = [&](const std::string& header, std::size_t data_bytes, const std::string& fragment) {
    const std::string path = dir.write("bad.safetensors", raw_file(header, data_bytes));
    require_error([&] { st::load(path); }, path + ": " + fragment);
  };
  refuses(R"({"a":5})", 0,
          "tensor 'a': the entry must be an object {\"dtype\", \"shape\", \"data_offsets\"}, got number");
  refuses(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", 4, "tensor 'a': missing field 'dtype'");
  refuses(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", 4, "tensor 'a': missing field 'shape'");
  refuses(R"({"a":{"dtype":"F32","shape":[1]}})", 4, "tensor 'a': missing field 'data_offsets'");
  refuses(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"offsets":[0,4]}})", 4,
          "tensor 'a': unknown field 'offsets'");
  refuses(R"({"a":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}})", 2, "tensor 'a': dtype 'BF16' is not supported");
  refuses(R"({"a":{"dtype":"XYZ","shape":[1],"data_offsets":[0,4]}})", 4, "tensor 'a': dtype 'XYZ' is not supported");
  refuses(R"({"a":{"dtype":3,"shape":[1],"data_offsets":[0,4]}})", 4,
          "tensor 'a': 'dtype' must be a string, got number");
  refuses(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4,
          "tensor 'a': 'shape' must hold non-negative integers, got -1");
  refuses(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4,
          "tensor 'a': 'shape' must hold non-negative integers, got 1.5");
  refuses(R"({"a":{"dtype":"F32","shape":"1","data_offsets":[0,4]}})", 4,
          "tensor 'a': 'shape' must be an array of non-negative integers, got string");
  refuses(R"({"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,4]}})", 4,
          "tensor 'a': shape: shape [1099511627776,1099511627776] has more than 2^60 elements");
  refuses(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", 8,
          "tensor 'a': 'data_offsets' must be [begin, end], got 3 numbers");
  refuses(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8,
          "tensor 'a': data_offsets [8, 4] end before they begin");
  refuses(R"({"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4, "a tensor has an empty name");
  // A newline in a name is shown escaped, so the message stays one line.
  refuses(R"({"a\nb":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}})", 2, "tensor 'a\\x0ab': dtype 'F16'");
}

TEST_CASE("safetensors: data offsets must tile the data section exactly", "[safetensors]") {
  TempDir dir("safetensors-tiling");
  auto refuses = [&](const std::string& header, std::size_t data_bytes, const std::string& fragment) {
    const std::string path = dir.write("ckpt.safetensors", raw_file(header, data_bytes));
    require_error([&] { st::load(path); }, path + ": " + fragment);
  };
  // Size not matching the shape: [4,4] float32 needs 16 * 4 = 64 bytes.
  refuses("{\"w_q.0.weight\":" + entry("F32", "[4,4]", 0, 60) + "}", 60,
          "tensor 'w_q.0.weight': data_offsets [0, 60] hold 60 bytes, shape [4,4] float32 needs 64");
  refuses("{\"s\":" + entry("I64", "[]", 0, 4) + "}", 4,
          "tensor 's': data_offsets [0, 4] hold 4 bytes, shape [] int64 needs 8");
  // Past the end: a truncated file (the header asks for 8 bytes, 4 are there), refused by
  // load_metadata too, which validates the header without reading the data.
  refuses("{\"a\":" + entry("F32", "[2]", 0, 8) + "}", 4,
          "tensor 'a': data_offsets [0, 8] go past the end of the data section (4 bytes)");
  const std::string truncated = dir.write("cut.safetensors", raw_file("{\"a\":" + entry("F32", "[2]", 0, 8) + "}", 4));
  require_error([&] { st::load_metadata(truncated); },
                truncated + ": tensor 'a': data_offsets [0, 8] go past the end of the data section (4 bytes)");
  // A hole between two tensors; the header is 112 bytes (padded), so data byte 4 is file byte 124.
  std::string header = "{\"a\":" + entry("F32", "[1]", 0, 4) + ",\"b\":" + entry("F32", "[1]", 8, 12) + "}";
  header.append((8 - header.size() % 8) % 8, ' ');
  REQUIRE(header.size() == 112);
  refuses(header, 12, "data bytes [4, 8) (file bytes [124, 128)) belong to no tensor (a hole before tensor 'b')");
  // A hole at the start.
  refuses("{\"a\":" + entry("F32", "[1]", 4, 8) + "}", 8, "data bytes [0, 4) (file bytes");
  // Overlap.
  refuses("{\"a\":" + entry("F32", "[2]", 0, 8) + ",\"b\":" + entry("F32", "[2]", 4, 12) + "}", 12,
          "tensor 'b': data_offsets [4, 12] overlap tensor 'a' (data_offsets [0, 8])");
  // Two tensors on the same bytes.
  refuses("{\"a\":" + entry("F32", "[1]", 0, 4) + ",\"b\":" + entry("F32", "[1]", 0, 4) + "}", 4,
          "tensor 'b': data_offsets [0, 4] overlap tensor 'a' (data_offsets [0, 4])");
  // A zero-size tensor inside another's bytes.
  refuses("{\"a\":" + entry("F32", "[2]", 0, 8) + ",\"z\":" + entry("F32", "[0]", 4, 4) + "}", 8,
          "tensor 'z': data_offsets [4, 4] overlap tensor 'a'");
  // Trailing bytes after the last tensor.
  // The header is 54 bytes, so data byte 4 is file byte 8 + 54 + 4 = 66.
  refuses("{\"a\":" + entry("F32", "[1]", 0, 4) + "}", 6,
          "data bytes [4, 6) (file bytes [66, 68)) after the last tensor belong to no tensor");
  refuses("{}", 1, "data bytes [0, 1)");

  // Zero-size tensors may sit at the same offset as each other and as the next tensor.
  const std::string ok =
      dir.write("ok.safetensors",
                raw_file("{\"z2\":" + entry("F64", "[0,5]", 4, 4) + ",\"b\":" + entry("F32", "[1]", 4, 8) +
                             ",\"z1\":" + entry("I64", "[3,0]", 4, 4) + ",\"a\":" + entry("F32", "[1]", 0, 4) + "}",
                         8));
  const st::File file = st::load(ok);
  // Offset order; among equal offsets [4,4] by name, then [4,8].
  CHECK(names_of(file.tensors) == std::vector<std::string>{"a", "z1", "z2", "b"});
  CHECK(file.tensors[2].second.shape() == Shape{0, 5});
}

TEST_CASE("safetensors: duplicate names are refused", "[safetensors]") {
  TempDir dir("safetensors-duplicates");
  auto refuses = [&](const std::string& header, std::size_t data_bytes, const std::string& fragment) {
    const std::string path = dir.write("bad.safetensors", raw_file(header, data_bytes));
    require_error([&] { st::load(path); }, path + ": " + fragment);
  };
  // A JSON parser alone would keep one of the two and the file would load.
  refuses("{\"a\":" + entry("F32", "[1]", 0, 4) + ",\"a\":" + entry("F32", "[1]", 4, 8) + "}", 8,
          "tensor 'a' appears twice in the header");
  refuses(R"({"__metadata__":{},"__metadata__":{}})", 0, "'__metadata__' appears twice in the header");
  refuses(R"({"a":{"dtype":"F32","dtype":"F64","shape":[1],"data_offsets":[0,4]}})", 4,
          "header entry 'a': the key 'dtype' appears twice");
  refuses(R"({"__metadata__":{"k":"1","k":"2"}})", 0, "header entry '__metadata__': the key 'k' appears twice");
}

TEST_CASE("safetensors: bad metadata is refused", "[safetensors]") {
  TempDir dir("safetensors-badmeta");
  auto refuses = [&](const std::string& header, const std::string& fragment) {
    const std::string path = dir.write("bad.safetensors", raw_file(header, 0));
    require_error([&] { st::load(path); }, path + ": " + fragment);
  };
  refuses(R"({"__metadata__":"x"})", "'__metadata__' must be an object of strings, got string");
  refuses(R"({"__metadata__":{"step":7}})", "'__metadata__' value of 'step' must be a string, got number");
}

// ---- load_into ------------------------------------------------------------------------

TEST_CASE("safetensors: load_into copies by name into the parameters", "[safetensors]") {
  st::File file;
  file.tensors = {{"b", f64({0.5, -1.5}, {2})}, {"w", f32({1, 2, 3, 4, 5, 6}, {2, 3})}};
  Tensor w = Tensor::zeros({2, 3});
  w.set_requires_grad();
  Tensor b = Tensor::zeros({2}, DType::Float64);
  const Tensor alias = w;  // another handle on the same storage sees the values too
  st::load_into(file, {{"w", w}, {"b", b}});
  require_close(alias, {1, 2, 3, 4, 5, 6});
  require_close(b, {0.5, -1.5});
  CHECK(w.requires_grad());
}

TEST_CASE("safetensors: load_into refuses mismatches and copies nothing then", "[safetensors]") {
  st::File file;
  file.tensors = {{"w", f32({1, 2, 3, 4}, {2, 2})}, {"b", f32({7, 8}, {2})}, {"opt.m", f32({9}, {1})}};
  Tensor w = Tensor::zeros({2, 2});
  Tensor b = Tensor::zeros({2});

  require_error(
      [&] {
        st::load_into(file, {{"w", w}, {"b", b}, {"c", Tensor::zeros({1})}}, true);
      },
      "load_into: tensor 'c' is missing from the file");
  require_error([&] { st::load_into(file, {{"w", w}, {"b", b}}); }, "load_into: unexpected tensor 'opt.m' in the file");
  require_error(
      [&] {
        st::load_into(file, {{"w", Tensor::zeros({4})}, {"b", b}}, true);
      },
      "load_into: tensor 'w': shape [2,2] in the file vs [4] in params");
  require_error(
      [&] {
        st::load_into(file, {{"w", w}, {"b", Tensor::zeros({2}, DType::Float64)}}, true);
      },
      "load_into: tensor 'b': dtype float32 in the file vs float64 in params");
  require_error(
      [&] {
        st::load_into(file, {{"w", w}, {"w", w}}, true);
      },
      "load_into: tensor 'w' is given twice in params");
  // Every problem in one message.
  require_error(
      [&] {
        st::load_into(file, {{"w", Tensor::zeros({3})}, {"x", w}});
      },
      "load_into: tensor 'w': shape [2,2] in the file vs [3] in params; tensor 'x' is missing from the file; "
      "unexpected tensor 'b' in the file; unexpected tensor 'opt.m' in the file");
  // w matched in each failed call above, yet nothing was copied.
  require_close(w, {0, 0, 0, 0});
  require_close(b, {0, 0});

  st::load_into(file, {{"w", w}, {"b", b}}, /*allow_extra=*/true);
  require_close(w, {1, 2, 3, 4});
  require_close(b, {7, 8});
}

TEST_CASE("safetensors: save load and load_into restore a model's parameters", "[safetensors]") {
  TempDir dir("safetensors-model");
  Generator gen(7);
  const Named saved = {{"emb.weight", Tensor::normal({5, 3}, gen)},
                       {"head.bias", Tensor::normal({3}, gen, 0, 1, DType::Float64)}};
  const std::string path = dir.file("model.safetensors");
  st::save(path, saved, {{"step", "100"}});
  const Named fresh = {{"emb.weight", Tensor::zeros({5, 3})}, {"head.bias", Tensor::zeros({3}, DType::Float64)}};
  const st::File file = st::load(path);
  st::load_into(file, fresh);
  for (std::size_t i = 0; i < saved.size(); ++i) require_bit_equal(fresh[i].second, saved[i].second);
  CHECK(file.metadata.at("step") == "100");
}
