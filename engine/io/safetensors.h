// safetensors.h: checkpoints in the safetensors format (Hugging Face).
//
// Format (https://github.com/huggingface/safetensors, README "Format"):
//   bytes [0, 8)        N, the header size, an unsigned 64-bit little-endian integer
//   bytes [8, 8 + N)    the header: a UTF-8 JSON object that begins with '{' and may be
//                       padded at the end with spaces
//   bytes [8 + N, end)  the data section: every tensor's elements, raw little-endian,
//                       row-major (C order), one contiguous byte range per tensor
// The header maps each tensor name to
//   {"dtype": "F32" | "F64" | "I64", "shape": [d0, d1, ...], "data_offsets": [begin, end]}
// (offsets in bytes, relative to the start of the data section, end exclusive) and may
// hold one "__metadata__" object mapping strings to strings (free-form notes: step,
// config, ...). The format has more dtypes (F16, BF16, I32, U8, BOOL, ...); hkt tensors
// are float32, float64 or int64, so only those three are read.
//
// Our rules (docs/engine.md convention 10), which are the reference implementation's too:
// the header is at most 100 MB (100,000,000 bytes); the data offsets tile the data
// section exactly (no holes, no overlaps, no range past the end, end - begin equal to
// numel * element size, no bytes after the last tensor); a name appears once (a JSON
// parser would silently keep one of two equal keys, so duplicates are detected while
// parsing); the header we write is padded with spaces to a multiple of 8 bytes, so the
// data section starts 8-byte aligned.
//
// Checkpoints only: this file knows nothing of models or optimizers. A training loop
// names its parameters ("w_q.0.weight", ...) and optimizer state and hands the list here.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tensor.h"

namespace hkt::safetensors {

/// The largest header we accept, in bytes (the reference implementation's limit).
inline constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

/// Writes `tensors` (CPU; float32, float64 or int64; names unique and non-empty) and
/// `metadata` to `path`: written to path + ".tmp" (flushed to disk with fsync) and
/// renamed, so an existing file is never left half-written; tensors are written in the
/// given order (the first one at data offset 0). The header is
/// {"__metadata__": {...} (only when metadata is not empty), name: {"dtype", "shape",
/// "data_offsets"}, ...} padded with spaces to a multiple of 8 bytes.
/// Throws hkt::Error, before anything is written, naming the tensor for an undefined
/// tensor, a tensor not on the CPU, an empty, duplicate or reserved ("__metadata__")
/// name, or a name or metadata string that is not valid UTF-8; and naming the path
/// (with the system's reason) for an I/O error, in which case path + ".tmp" is removed
/// and an existing `path` is left as it was.
void save(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
          const std::map<std::string, std::string>& metadata = {});

/// The contents of a safetensors file.
struct File {
  /// (name, CPU tensor) in order of data offset (ties, which only zero-size tensors can
  /// have, in name order). For a file written by save(), the order it was given.
  std::vector<std::pair<std::string, Tensor>> tensors;
  /// The "__metadata__" object (empty when the file has none).
  std::map<std::string, std::string> metadata;
};

/// Reads and validates the file at `path` and returns its tensors (on the CPU, dtype
/// float32 / float64 / int64 for F32 / F64 / I64) and metadata. Nothing is allocated for
/// tensor data until the whole header has been validated, so a damaged file costs at
/// most its header.
/// Throws hkt::Error whose message begins with the path and names the offending tensor
/// or byte offset, for: a path that cannot be opened or is not a regular file; a file
/// shorter than 8 bytes; a header size above kMaxHeaderBytes or beyond the end of the
/// file; a header that does not begin with '{', is not valid JSON (with the byte offset
/// and the parser's reason), is nested deeper than a header can be, or repeats a name
/// (or a key inside one entry); an "__metadata__" that is not an object of strings; an
/// empty tensor name; an entry that is not an object, lacks "dtype", "shape" or
/// "data_offsets", or has any other field; a dtype other than F32, F64, I64 (naming the
/// dtype); a shape that is not an array of non-negative integers, has rank above 8 or
/// more than 2^60 elements; data_offsets that are not two integers with begin <= end,
/// reach past the end of the data section, or hold a byte count other than
/// numel * element size, e.g.
///   "ckpt.safetensors: tensor 'w_q.0.weight': data_offsets [0, 60] hold 60 bytes,
///    shape [4,4] float32 needs 64";
/// two tensors that overlap, a hole between two tensors, or bytes after the last tensor
/// (naming the data and file byte offsets); a file that ends while being read.
File load(const std::string& path);

/// The "__metadata__" object of the safetensors file at `path` (empty when it has none),
/// without reading any tensor's data: the header is read and validated as by load(), with
/// the same errors for a damaged header (a short or truncated data section too, since the
/// entries must tile it).
std::map<std::string, std::string> load_metadata(const std::string& path);

/// Copies the loaded tensors into `params` by name (into their existing storage, on the
/// CPU or the GPU, so every handle to a parameter sees the loaded values; autograd is not
/// involved, as with PyTorch's load_state_dict). Every name of `params` must be in the
/// file with the same shape and dtype, and the file must have no other tensors (unless
/// allow_extra, e.g. to load only the model out of a checkpoint that also holds
/// optimizer state).
/// Throws hkt::Error, before copying anything, listing every problem in one line, each
/// naming the tensor: "load_into: tensor 'b' is missing from the file; tensor 'w': shape
/// [2,3] in the file vs [3,2] in params; unexpected tensor 'extra' in the file"; also for
/// an undefined parameter, a parameter name given twice, a name twice in `file`, or a
/// dtype that differs ("dtype float64 in the file vs float32 in params").
void load_into(const File& file, const std::vector<std::pair<std::string, Tensor>>& params, bool allow_extra = false);

}  // namespace hkt::safetensors
