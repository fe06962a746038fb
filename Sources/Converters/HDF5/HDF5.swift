import CHDF5
import Foundation
import Runtime

// The one file that calls libhdf5 (STYLE.md §4). Everything else sees HDF5File, HDF5Group and
// HDF5FloatArray. Files are opened from memory (core driver + file image), read-only; only hard
// links are followed, so a file cannot send libhdf5 to another file on disk, and datasets whose
// data lives outside the file (external storage, virtual datasets) are refused. Plugin filters
// are switched off, so a dataset cannot make libhdf5 load a shared library.

/// Library set-up, done once: initialise, silence the error printer, forbid filter plugins.
private let hdf5Ready: Bool = {
    guard H5open() >= 0 else { return false }
    _ = clipsafety_h5_silence_errors()
    return H5PLset_loading_state(0) >= 0
}()

/// Turns a failed libhdf5 call into a ClipSafetyError, with libhdf5's own most specific reason.
enum HDF5Failure {
    static func error(_ what: String, kind: ClipSafetyError.Kind = .malformed) -> ClipSafetyError {
        var buffer = [CChar](repeating: 0, count: 256)
        buffer.withUnsafeMutableBufferPointer { clipsafety_h5_take_error($0.baseAddress!) }
        let reason = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let lower = reason.lowercased()
        let k: ClipSafetyError.Kind = (lower.contains("truncated") || lower.contains("eof")) && kind == .malformed ? .truncated : kind
        return ClipSafetyError(k, "HDF5: \(what)" + (reason.isEmpty ? "" : " (\(reason))"))
    }

    static func check(_ status: herr_t, _ what: String) throws {
        guard status >= 0 else { throw error(what) }
    }
}

/// An HDF5 identifier closed when the last reference goes, on every path out of a scope.
final class HDF5Handle {
    let id: hid_t
    private let close: (hid_t) -> herr_t

    /// Takes ownership of `id`; throws when libhdf5 returned a negative id for `what`.
    init(_ id: hid_t, _ what: @autoclosure () -> String, close: @escaping (hid_t) -> herr_t) throws {
        guard id >= 0 else { throw HDF5Failure.error(what()) }
        self.id = id
        self.close = close
    }

    deinit { _ = close(id) }
}

/// A read-only HDF5 file held in memory.
final class HDF5File {
    let root: HDF5Group
    private let file: HDF5Handle

    /// Opens an HDF5 image (the whole file's bytes) without touching the disk.
    init(image: Data, limits: ReaderLimits) throws {
        guard hdf5Ready else { throw ClipSafetyError.io("HDF5: the library failed to initialise") }
        guard image.count <= limits.maxFileBytes else {
            throw ClipSafetyError.limitExceeded("HDF5: image of \(image.count) bytes exceeds the limit of \(limits.maxFileBytes)")
        }
        guard image.count >= 8 else { throw ClipSafetyError.truncated("HDF5: \(image.count) bytes are too few for a file") }
        let fapl = try HDF5Handle(H5Pcreate(clipsafety_h5p_file_access()), "cannot create a file access list", close: H5Pclose)
        try HDF5Failure.check(H5Pset_fapl_core(fapl.id, 1 << 16, false), "cannot select the in-memory driver")
        // H5Pset_file_image copies the bytes; the copy lives as long as the open file.
        let status = image.withUnsafeBytes { raw in H5Pset_file_image(fapl.id, UnsafeMutableRawPointer(mutating: raw.baseAddress), raw.count) }
        try HDF5Failure.check(status, "cannot hand the file image to libhdf5")
        // Everything libhdf5 will decode is checked first (see HDF5Preflight).
        let checked = try HDF5Preflight.check(image: image, limits: limits)
        file = try HDF5Handle(H5Fopen(Self.uniqueImageName(), clipsafety_h5f_acc_rdonly(), fapl.id),
                              "not a readable HDF5 file", close: H5Fclose)
        try Self.checkSameGeometry(file, checked.geometry)
        let strings = HDF5VariableStrings(geometry: checked.geometry, limits: limits, checkedHeaders: checked.objectHeaders,
                                          denseAttributeHeaders: checked.denseAttributeHeaders)
        root = try HDF5Group(handle: HDF5Handle(H5Gopen2(file.id, "/", clipsafety_h5p_default()), "cannot open the root group", close: H5Gclose),
                             path: "/", strings: strings)
    }

    private static let nameLock = NSLock()
    nonisolated(unsafe) private static var opened = 0

    /// A name no other open image has: libhdf5 treats two opens of one name as the same file
    /// and would hand back the first image's contents for the second.
    private static func uniqueImageName() -> String {
        nameLock.lock()
        defer { nameLock.unlock() }
        opened += 1
        return "clipsafety-memory-image-\(opened).h5"
    }

    /// libhdf5 must have found the superblock the preflight checked.
    private static func checkSameGeometry(_ file: HDF5Handle, _ g: HDF5Geometry) throws {
        let fcpl = try HDF5Handle(H5Fget_create_plist(file.id), "cannot read the file's creation properties", close: H5Pclose)
        var offsetSize = 0, lengthSize = 0
        var userBlock: hsize_t = 0
        try HDF5Failure.check(H5Pget_sizes(fcpl.id, &offsetSize, &lengthSize), "cannot read the file's address size")
        try HDF5Failure.check(H5Pget_userblock(fcpl.id, &userBlock), "cannot read the file's user block size")
        guard offsetSize == g.offsetSize, lengthSize == g.lengthSize, userBlock == hsize_t(g.base) else {
            throw ClipSafetyError.malformed("HDF5: libhdf5 reads another superblock than the one checked")
        }
    }
}

/// Bytes of dataset values allocated for one file, in total. A compressed dataset can inflate
/// far past the file's size, and a config can name one dataset many times through hard links,
/// so a per-dataset cap alone would not bound memory.
final class HDF5ReadBudget {
    private(set) var used = 0

    /// Reserves `bytes` (non-negative) or throws when the total would pass `limit`.
    func charge(_ bytes: Int, limit: Int, what: String) throws {
        guard bytes <= limit - used else {
            throw ClipSafetyError.limitExceeded("HDF5: reading \(what) would take the values read from this file past \(limit) bytes (raise with --max-uncompressed-bytes)")
        }
        used += bytes
    }
}

/// Values of a floating-point dataset, converted to Float32 by libhdf5, and its shape.
struct HDF5FloatArray {
    /// `[]` for a scalar.
    var shape: [Int]
    var values: [Float]
    /// Bytes per element as stored (2, 4 or 8).
    var storedElementSize: Int
}

/// An open group. Paths given to its methods are relative, `/`-separated, and followed one hard
/// link at a time.
struct HDF5Group {
    let handle: HDF5Handle
    /// Absolute path, for messages.
    let path: String
    /// Reads variable-length strings from the file's bytes (libhdf5's own reader is unsafe on
    /// hostile files; see HDF5VariableStrings).
    let strings: HDF5VariableStrings
    var limits: ReaderLimits { strings.limits }
    /// Bytes of the whole file: no attribute or uncompressed dataset can hold more.
    var imageSize: Int { strings.image.count }

    func child(_ relative: String) -> String {
        path == "/" ? "/" + relative : path + "/" + relative
    }

    /// Splits a relative path; refuses empty, absolute and `.`/`..` components.
    private func components(_ relative: String) throws -> [String] {
        let parts = relative.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard !parts.isEmpty, parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." && !$0.utf8.contains(0) }) else {
            throw ClipSafetyError.malformed("HDF5: '\(relative)' is not a plain relative path (under \(path))")
        }
        return parts
    }

    /// True when every component of `relative` exists as a hard link. A soft or external link
    /// on the way is an error: it would point elsewhere (possibly to another file).
    func exists(_ relative: String) throws -> Bool {
        var current = handle
        let parts = try components(relative)
        for (i, part) in parts.enumerated() {
            let found = H5Lexists(current.id, part, clipsafety_h5p_default())
            guard found >= 0 else { throw HDF5Failure.error("cannot look up '\(child(relative))'") }
            if found == 0 { return false }
            var address: UInt64 = 0
            let hard = clipsafety_h5_hard_link_address(current.id, part, &address)
            guard hard >= 0 else { throw HDF5Failure.error("cannot read the link '\(part)' in \(path)") }
            guard hard == 1 else {
                throw ClipSafetyError.unsafe("HDF5: '\(child(parts[0...i].joined(separator: "/")))' is a soft or external link; only hard links are followed")
            }
            // Every object is reached through here before libhdf5 opens it.
            try strings.requireChecked(address, what: child(parts[0...i].joined(separator: "/")))
            if i < parts.count - 1 {
                current = try HDF5Handle(H5Oopen(current.id, part, clipsafety_h5p_default()), "cannot open '\(child(parts[0...i].joined(separator: "/")))'", close: H5Oclose)
            }
        }
        return true
    }

    /// Opens a subgroup; `.mismatch` when it does not exist.
    func group(_ relative: String) throws -> HDF5Group {
        guard try exists(relative) else { throw ClipSafetyError.mismatch("HDF5: group '\(child(relative))' is missing") }
        let id = H5Gopen2(handle.id, relative, clipsafety_h5p_default())
        return HDF5Group(handle: try HDF5Handle(id, "'\(child(relative))' is not a group", close: H5Gclose),
                         path: child(relative), strings: strings)
    }

    /// Number of links (members) in this group.
    func memberCount() throws -> Int {
        var info = H5G_info_t()
        try HDF5Failure.check(H5Gget_info(handle.id, &info), "cannot list group \(path)")
        return Int(clamping: info.nlinks)
    }

    func hasAttribute(_ name: String) throws -> Bool {
        // H5Aexists decodes every attribute of the header: inline ones were checked by the
        // preflight; a fractal heap of them is not let through.
        var address: UInt64 = 0
        guard clipsafety_h5_object_address(handle.id, &address) >= 0 else {
            throw HDF5Failure.error("cannot locate the header of \(path)")
        }
        try strings.requireChecked(address, what: path)
        guard !strings.denseAttributeHeaders.contains(address) else {
            throw ClipSafetyError.unsupported("HDF5: attribute '\(name)' of \(path) would be looked up in dense (fractal heap) storage, which clipsafety does not read")
        }
        let r = H5Aexists(handle.id, name)
        guard r >= 0 else { throw HDF5Failure.error("cannot look up attribute '\(name)' of \(path)") }
        return r > 0
    }

    /// A scalar (or one-element) string attribute; nil when absent.
    func stringAttribute(_ name: String) throws -> String? {
        guard let strings = try stringsAttribute(name) else { return nil }
        guard strings.count == 1 else {
            throw ClipSafetyError.malformed("HDF5: attribute '\(name)' of \(path) holds \(strings.count) strings, expected one")
        }
        return strings[0]
    }

    /// A string or string-array attribute (fixed or variable length); nil when absent. An empty
    /// attribute of any type (Keras writes an empty float array for "no weights") gives `[]`.
    func stringsAttribute(_ name: String) throws -> [String]? {
        guard try hasAttribute(name) else { return nil }
        let what = "attribute '\(name)' of \(path)"
        let attr = try HDF5Handle(H5Aopen(handle.id, name, clipsafety_h5p_default()), "cannot open \(what)", close: H5Aclose)
        let space = try HDF5Handle(H5Aget_space(attr.id), "cannot read the shape of \(what)", close: H5Sclose)
        let points = H5Sget_simple_extent_npoints(space.id)
        guard points >= 0 else { throw HDF5Failure.error("cannot count the elements of \(what)") }
        let count = Int(points)
        guard count <= limits.maxTensorElements else {
            throw ClipSafetyError.limitExceeded("HDF5: \(what) holds \(count) strings, over the limit of \(limits.maxTensorElements)")
        }
        // Every stored string takes at least one byte of the file (attributes are never compressed).
        guard count <= imageSize else {
            throw ClipSafetyError.malformed("HDF5: \(what) declares \(count) strings, more than the file's \(imageSize) bytes could hold")
        }
        let type = try HDF5Handle(H5Aget_type(attr.id), "cannot read the type of \(what)", close: H5Tclose)
        let typeClass = H5Tget_class(type.id)
        if count == 0 { return [] }
        guard typeClass == H5T_STRING else {
            throw ClipSafetyError.malformed("HDF5: \(what) is not a string")
        }
        let variable = H5Tis_variable_str(type.id)
        guard variable >= 0 else { throw HDF5Failure.error("cannot read the type of \(what)") }
        let cset = H5Tget_cset(type.id)
        if variable > 0 {
            var address: UInt64 = 0
            guard clipsafety_h5_object_address(handle.id, &address) >= 0 else {
                throw HDF5Failure.error("cannot locate the header of \(path)")
            }
            do {
                return try strings.read(attribute: name, headerAddress: address, count: count)
            } catch let e as ClipSafetyError {
                throw ClipSafetyError(e.kind, "\(e.message) (in \(path))")
            }
        }
        let size = H5Tget_size(type.id)
        guard size > 0, size <= Int.max else { throw HDF5Failure.error("cannot read the string size of \(what)") }
        let width = Int(size)
        let (total, overflow) = width.multipliedReportingOverflow(by: count)
        guard !overflow, total <= limits.maxUncompressedBytes, total <= imageSize else {
            throw ClipSafetyError.limitExceeded("HDF5: \(what) holds \(count) strings of \(width) bytes, over the limit of \(limits.maxUncompressedBytes) bytes")
        }
        let memType = try HDF5Handle(H5Tcopy(clipsafety_h5t_c_s1()), "cannot make a string type", close: H5Tclose)
        try HDF5Failure.check(H5Tset_size(memType.id, size), "cannot make a string type")
        try HDF5Failure.check(H5Tset_strpad(memType.id, H5Tget_strpad(type.id)), "cannot make a string type")
        try HDF5Failure.check(H5Tset_cset(memType.id, cset), "cannot make a string type")
        var buffer = [UInt8](repeating: 0, count: total)
        let status = buffer.withUnsafeMutableBytes { H5Aread(attr.id, memType.id, $0.baseAddress) }
        guard status >= 0 else { throw HDF5Failure.error("cannot read \(what)") }
        let spacePadded = H5Tget_strpad(type.id) == H5T_STR_SPACEPAD
        return try (0..<count).map { i in
            var bytes = buffer[(i * width)..<((i + 1) * width)].prefix { $0 != 0 }
            if spacePadded { while bytes.last == 0x20 { bytes = bytes.dropLast() } }
            return try Self.decode(Data(bytes), what: what)
        }
    }

    private static func decode(_ data: Data, what: String) throws -> String {
        guard let s = String(data: data, encoding: .utf8) else {
            throw ClipSafetyError.malformed("HDF5: \(what) is not valid UTF-8")
        }
        return s
    }

    /// Reads a floating-point dataset (float16, float32, float64 as stored) as Float32 after
    /// checking its element count against the limits.
    func floatDataset(_ relative: String) throws -> HDF5FloatArray {
        let (dataset, what) = try openDataset(relative)
        let type = try HDF5Handle(H5Dget_type(dataset.id), "cannot read the type of \(what)", close: H5Tclose)
        let typeClass = H5Tget_class(type.id)
        let elementSize = H5Tget_size(type.id)
        guard typeClass == H5T_FLOAT else {
            let kind = typeClass == H5T_INTEGER ? "integers" : typeClass == H5T_STRING ? "strings" : "a non-numeric type"
            throw ClipSafetyError.mismatch("HDF5: \(what) holds \(kind), not floating-point values")
        }
        guard elementSize == 2 || elementSize == 4 || elementSize == 8 else {
            throw ClipSafetyError.unsupported("HDF5: \(what) holds \(elementSize)-byte floats; float16, float32 and float64 are supported")
        }

        let space = try HDF5Handle(H5Dget_space(dataset.id), "cannot read the shape of \(what)", close: H5Sclose)
        let shape = try Self.shape(of: space, what: what)
        var count = 1
        for d in shape {
            let (p, o) = count.multipliedReportingOverflow(by: d)
            guard !o else { throw ClipSafetyError.limitExceeded("HDF5: \(what) of shape \(shape) has too many elements") }
            count = p
        }
        guard count <= limits.maxTensorElements else {
            throw ClipSafetyError.limitExceeded("HDF5: \(what) of shape \(shape) holds \(count) elements, over the limit of \(limits.maxTensorElements) (raise with --max-tensor-elements)")
        }
        try Self.checkStoredBytes(dataset, elements: count, elementSize: elementSize, imageSize: imageSize, what: what)
        try strings.budget.charge(count * MemoryLayout<Float>.size, limit: limits.maxUncompressedBytes, what: what)
        var values = [Float](repeating: 0, count: count)
        if count > 0 {
            let status = values.withUnsafeMutableBytes {
                H5Dread(dataset.id, clipsafety_h5t_native_float(), clipsafety_h5s_all(), clipsafety_h5s_all(), clipsafety_h5p_default(), $0.baseAddress)
            }
            guard status >= 0 else { throw HDF5Failure.error("cannot read \(what)") }
        }
        return HDF5FloatArray(shape: shape, values: values, storedElementSize: elementSize)
    }

    /// The element type a dataset stores (`F16`, `F32`, `F64`, `I64`, `U8`, `string`, …) and
    /// its shape, from its header: no values are read.
    func datasetInfo(_ relative: String, checkStorage: Bool = true) throws -> (dtype: String, shape: [Int]) {
        let (dataset, what) = try openDataset(relative, checkStorage: checkStorage)
        let type = try HDF5Handle(H5Dget_type(dataset.id), "cannot read the type of \(what)", close: H5Tclose)
        let space = try HDF5Handle(H5Dget_space(dataset.id), "cannot read the shape of \(what)", close: H5Sclose)
        return (Self.typeName(type), try Self.shape(of: space, what: what))
    }

    /// Opens a dataset whose data lies inside this file.
    private func openDataset(_ relative: String, checkStorage: Bool = true) throws -> (HDF5Handle, String) {
        guard try exists(relative) else { throw ClipSafetyError.mismatch("HDF5: dataset '\(child(relative))' is missing") }
        let what = "dataset '\(child(relative))'"
        let dataset = try HDF5Handle(H5Dopen2(handle.id, relative, clipsafety_h5p_default()), "\(what) is not a dataset", close: H5Dclose)
        if checkStorage { try Self.checkStorageIsInternal(dataset, what: what) }
        return (dataset, what)
    }

    /// Safetensors' name of a stored numeric type where there is one, else `string` or `other`.
    static func typeName(_ type: HDF5Handle) -> String {
        let size = H5Tget_size(type.id)
        switch H5Tget_class(type.id) {
        case H5T_FLOAT: return [2: "F16", 4: "F32", 8: "F64"][size] ?? "float\(size * 8)"
        case H5T_INTEGER:
            let signed = H5Tget_sign(type.id) == H5T_SGN_2
            if size == 1 && !signed { return "U8" }
            return (signed ? "I" : "U") + String(size * 8)
        case H5T_STRING: return "string"
        default: return "other"
        }
    }

    /// Checks the bytes a dataset really stores before anything is allocated from its shape:
    /// an unfiltered dataset must store exactly elements × size bytes (no unallocated,
    /// fill-value data), and no dataset can store more than the file holds.
    private static func checkStoredBytes(_ dataset: HDF5Handle, elements: Int, elementSize: Int, imageSize: Int, what: String) throws {
        guard elements > 0 else { return }
        let stored = H5Dget_storage_size(dataset.id)
        let dcpl = try HDF5Handle(H5Dget_create_plist(dataset.id), "cannot read the storage of \(what)", close: H5Pclose)
        let filters = H5Pget_nfilters(dcpl.id)
        guard filters >= 0 else { throw HDF5Failure.error("cannot read the filters of \(what)") }
        guard stored > 0, stored <= hsize_t(imageSize) else {
            throw ClipSafetyError.malformed("HDF5: \(what) stores \(stored) bytes of data for \(elements) elements (the file has \(imageSize))")
        }
        if filters == 0 {
            let (declared, overflow) = elements.multipliedReportingOverflow(by: elementSize)
            guard !overflow, stored == hsize_t(declared) else {
                throw ClipSafetyError.malformed("HDF5: \(what) declares \(elements) elements of \(elementSize) bytes but stores \(stored) bytes")
            }
        }
    }

    /// Dimensions of a dataspace: `[]` for a scalar; a null dataspace is refused.
    static func shape(of space: HDF5Handle, what: String) throws -> [Int] {
        let spaceClass = H5Sget_simple_extent_type(space.id)
        if spaceClass == H5S_SCALAR { return [] }
        guard spaceClass == H5S_SIMPLE else { throw ClipSafetyError.mismatch("HDF5: \(what) has no data (null dataspace)") }
        let rank = H5Sget_simple_extent_ndims(space.id)
        guard rank >= 0, rank <= 32 else { throw HDF5Failure.error("cannot read the rank of \(what)") }
        var dims = [hsize_t](repeating: 0, count: Int(rank))
        guard H5Sget_simple_extent_dims(space.id, &dims, nil) == rank else {
            throw HDF5Failure.error("cannot read the shape of \(what)")
        }
        return try dims.map { d in
            guard d <= hsize_t(Int.max) else { throw ClipSafetyError.limitExceeded("HDF5: \(what) has a dimension of \(d)") }
            return Int(d)
        }
    }

    /// Refuses datasets whose bytes live outside this file: external raw-data files and
    /// virtual datasets would make libhdf5 open paths the file names.
    private static func checkStorageIsInternal(_ dataset: HDF5Handle, what: String) throws {
        let dcpl = try HDF5Handle(H5Dget_create_plist(dataset.id), "cannot read the storage of \(what)", close: H5Pclose)
        let layout = H5Pget_layout(dcpl.id)
        guard layout != H5D_LAYOUT_ERROR else { throw HDF5Failure.error("cannot read the layout of \(what)") }
        guard layout != H5D_VIRTUAL else {
            throw ClipSafetyError.unsafe("HDF5: \(what) is a virtual dataset drawing on other files; refused")
        }
        let external = H5Pget_external_count(dcpl.id)
        guard external >= 0 else { throw HDF5Failure.error("cannot read the storage of \(what)") }
        guard external == 0 else {
            throw ClipSafetyError.unsafe("HDF5: \(what) keeps its data in external files; refused")
        }
    }
}

/// A dataset of an open file, described now and read later: the reference keeps the file open.
/// Reads are serialised, because libhdf5 is not built to be called from two threads at once.
struct HDF5DatasetReference: @unchecked Sendable {
    private static let lock = NSLock()
    let file: HDF5File
    let group: HDF5Group
    let path: String

    /// The dataset as a tensor called `name`: its stored type and shape now, its values (as
    /// float32, converted by libhdf5, within the file's limits) when read.
    func described(as name: String) throws -> DescribedTensor {
        let info = try group.datasetInfo(path)
        return DescribedTensor(name: name, dtype: info.dtype, shape: info.shape) {
            let array = try Self.lock.withLock { try group.floatDataset(path) }
            return Tensor(name: name, shape: array.shape, floats: array.values)
        }
    }
}
