import CHDF5
import Converters
import Foundation
import Runtime
import TestSupport

/// Writes small HDF5 files with libhdf5 (core driver: built in memory, written to a temporary
/// file when closed, then read back), so tests can make the varied and hostile Keras files
/// they need. Used by tests only.
final class HDF5TestWriter {
    enum FloatType { case f16, f32, f64 }

    struct WriterError: Error, CustomStringConvertible {
        var description: String
    }

    private var file: hid_t
    private let path = NSTemporaryDirectory() + "clipsafety-h5-\(UUID().uuidString).h5"

    /// `latestFormat` writes version-2 object headers (what `libver="latest"` gives in h5py);
    /// `offsetSize` and `lengthSize` are the widths of file addresses and lengths (2, 4 or 8).
    init(latestFormat: Bool = false, offsetSize: Int = 8, lengthSize: Int = 8) throws {
        _ = H5open()
        _ = clipsafety_h5_silence_errors()
        let fapl = H5Pcreate(clipsafety_h5p_file_access())
        defer { H5Pclose(fapl) }
        let fcpl = H5Pcreate(Self.plistClass("H5P_CLS_FILE_CREATE_ID_g"))
        defer { H5Pclose(fcpl) }
        try Self.check(H5Pset_sizes(fcpl, offsetSize, lengthSize), "sizes")
        try Self.check(H5Pset_fapl_core(fapl, 1 << 16, true), "core driver")
        if latestFormat {
            try Self.check(H5Pset_libver_bounds(fapl, clipsafety_h5f_libver_latest(), clipsafety_h5f_libver_latest()), "libver")
        }
        file = H5Fcreate(path, clipsafety_h5f_acc_trunc(), fcpl, fapl)
        guard file >= 0 else { throw WriterError(description: "H5Fcreate failed") }
    }

    deinit {
        if file >= 0 { H5Fclose(file) }
        unlink(path)
    }

    /// libhdf5's property-list class held in global `name` (Swift 6 refuses to read C globals
    /// directly; the shim has no helper for the classes only tests use).
    private static func plistClass(_ name: String) -> hid_t {
        guard let symbol = dlsym(nil, name) else { return -1 }
        return symbol.load(as: hid_t.self)
    }

    private static func check(_ status: herr_t, _ what: String) throws {
        guard status >= 0 else { throw WriterError(description: "HDF5 test writer: \(what) failed") }
    }

    private static func check(_ id: hid_t, _ what: String) throws -> hid_t {
        guard id >= 0 else { throw WriterError(description: "HDF5 test writer: \(what) failed") }
        return id
    }

    /// A link-creation list that makes missing intermediate groups.
    private func intermediateGroups() throws -> hid_t {
        let lcpl = try Self.check(H5Pcreate(clipsafety_h5p_link_create()), "lcpl")
        try Self.check(H5Pset_create_intermediate_group(lcpl, 1), "intermediate groups")
        return lcpl
    }

    /// Creates a group (and its parents).
    func group(_ path: String) throws {
        if H5Lexists(file, path, clipsafety_h5p_default()) > 0 { return }
        let lcpl = try intermediateGroups()
        defer { H5Pclose(lcpl) }
        let g = try Self.check(H5Gcreate2(file, path, lcpl, clipsafety_h5p_default(), clipsafety_h5p_default()), "group \(path)")
        H5Gclose(g)
    }

    /// The file type of a float width; float16 is built the way h5py builds it (HDF5 1.10 has
    /// no predefined half type).
    private func fileType(_ type: FloatType) throws -> hid_t {
        switch type {
        case .f32: return H5Tcopy(clipsafety_h5t_ieee_f32le())
        case .f64: return H5Tcopy(clipsafety_h5t_ieee_f64le())
        case .f16:
            let t = H5Tcopy(clipsafety_h5t_ieee_f32le())
            try Self.check(H5Tset_fields(t, 15, 10, 5, 0, 10), "half fields")
            try Self.check(H5Tset_size(t, 2), "half size")
            try Self.check(H5Tset_ebias(t, 15), "half bias")
            return t
        }
    }

    /// A float dataset of `shape` (`[]` = scalar), stored as `type`, from Double values.
    func floats(_ path: String, shape: [Int], _ values: [Double], type: FloatType = .f32) throws {
        let t = try fileType(type)
        defer { H5Tclose(t) }
        try dataset(path, shape: shape, fileType: t, memType: clipsafety_h5t_native_double(), values: values)
    }

    /// How a dataset is stored: contiguous by default, else compact or chunked with filters.
    struct Storage {
        var chunks: [Int]?
        var compact = false
        var shuffle = false
        var deflate = false
        var fletcher32 = false
        /// A fill value (float32) recorded with the dataset.
        var fill: Float?
        /// Every dimension may grow (needed for chunks larger than the extent).
        var unlimited = false
        /// Written when false: the dataset then stores nothing.
        var leaveUnwritten = false
        /// Space allocated when the dataset is created (unfiltered chunks then get an implicit
        /// index in the newest format).
        var earlyAllocation = false
    }

    /// A float dataset stored as `storage` says.
    func floats(_ path: String, shape: [Int], _ values: [Double], type: FloatType = .f32, storage: Storage) throws {
        let t = try fileType(type)
        defer { H5Tclose(t) }
        let dcpl = try Self.check(H5Pcreate(Self.plistClass("H5P_CLS_DATASET_CREATE_ID_g")), "dcpl")
        defer { H5Pclose(dcpl) }
        if storage.compact { try Self.check(H5Pset_layout(dcpl, H5D_COMPACT), "compact") }
        if let chunks = storage.chunks { try Self.check(H5Pset_chunk(dcpl, Int32(chunks.count), chunks.map { hsize_t($0) }), "chunk") }
        if storage.shuffle { try Self.check(H5Pset_shuffle(dcpl), "shuffle") }
        if storage.deflate { try Self.check(H5Pset_deflate(dcpl, 6), "deflate") }
        if storage.fletcher32 { try Self.check(H5Pset_fletcher32(dcpl), "fletcher32") }
        if storage.earlyAllocation { try Self.check(H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY), "allocation time") }
        if var fill = storage.fill { try Self.check(H5Pset_fill_value(dcpl, clipsafety_h5t_native_float(), &fill), "fill") }
        try dataset(path, shape: shape, fileType: t, memType: clipsafety_h5t_native_double(), values: storage.leaveUnwritten ? [] : values,
                    dcpl: dcpl, unlimited: storage.unlimited)
    }

    /// A virtual dataset of `shape` floats drawn from `source` in file `file`.
    func virtualFloats(_ path: String, shape: [Int], file other: String, source: String) throws {
        let dims = shape.map { hsize_t($0) }
        let space = H5Screate_simple(Int32(dims.count), dims, nil)
        defer { H5Sclose(space) }
        let dcpl = try Self.check(H5Pcreate(Self.plistClass("H5P_CLS_DATASET_CREATE_ID_g")), "dcpl")
        defer { H5Pclose(dcpl) }
        try Self.check(H5Sselect_all(space), "select")
        try Self.check(H5Pset_virtual(dcpl, space, other, source, space), "virtual")
        let d = try Self.check(H5Dcreate2(file, path, clipsafety_h5t_ieee_f32le(), space, clipsafety_h5p_default(), dcpl, clipsafety_h5p_default()), "virtual \(path)")
        H5Dclose(d)
    }

    /// A float32 dataset of `shape` whose bytes live in file `other` (external storage).
    func externalFloats(_ path: String, shape: [Int], file other: String) throws {
        let dcpl = try Self.check(H5Pcreate(Self.plistClass("H5P_CLS_DATASET_CREATE_ID_g")), "dcpl")
        defer { H5Pclose(dcpl) }
        try Self.check(H5Pset_external(dcpl, other, 0, hsize_t(4 * shape.reduce(1, *))), "external")
        try dataset(path, shape: shape, fileType: clipsafety_h5t_ieee_f32le(), memType: clipsafety_h5t_native_double(),
                    values: [Double](), dcpl: dcpl)
    }

    /// An int64 dataset (Keras' Normalization `count`, or a hostile integer kernel).
    func int64s(_ path: String, shape: [Int], _ values: [Int64]) throws {
        try dataset(path, shape: shape, fileType: clipsafety_h5t_std_i64le(), memType: clipsafety_h5t_native_int64(), values: values)
    }

    private func dataset<T>(_ path: String, shape: [Int], fileType: hid_t, memType: hid_t, values: [T],
                            dcpl: hid_t = clipsafety_h5p_default(), unlimited: Bool = false) throws {
        let dims = shape.map { hsize_t($0) }
        let maxDims = unlimited ? dims.map { _ in hsize_t.max } : nil
        let space = shape.isEmpty ? H5Screate(H5S_SCALAR) : H5Screate_simple(Int32(dims.count), dims, maxDims)
        defer { H5Sclose(space) }
        let lcpl = try intermediateGroups()
        defer { H5Pclose(lcpl) }
        let d = try Self.check(H5Dcreate2(file, path, fileType, space, lcpl, dcpl, clipsafety_h5p_default()), "dataset \(path)")
        defer { H5Dclose(d) }
        if !values.isEmpty {
            try values.withUnsafeBytes { raw in
                try Self.check(H5Dwrite(d, memType, clipsafety_h5s_all(), clipsafety_h5s_all(), clipsafety_h5p_default(), raw.baseAddress), "write \(path)")
            }
        }
    }

    /// A string attribute (`scalar`: one string in a scalar dataspace; else a 1-D array).
    func strings(_ name: String, on path: String, _ values: [String], scalar: Bool = false, fixedLength: Bool = false) throws {
        let object = try Self.check(H5Oopen(file, path, clipsafety_h5p_default()), "open \(path)")
        defer { H5Oclose(object) }
        let type = H5Tcopy(clipsafety_h5t_c_s1())
        defer { H5Tclose(type) }
        let space = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, [hsize_t(values.count)], nil)
        defer { H5Sclose(space) }
        if fixedLength {
            let width = max(values.map(\.utf8.count).max() ?? 1, 1)
            try Self.check(H5Tset_size(type, width), "string size")
            try Self.check(H5Tset_strpad(type, H5T_STR_NULLPAD), "string pad")
            var buffer = [UInt8](repeating: 0, count: width * values.count)
            for (i, v) in values.enumerated() { for (j, b) in v.utf8.enumerated() { buffer[i * width + j] = b } }
            let a = try Self.check(H5Acreate2(object, name, type, space, clipsafety_h5p_default(), clipsafety_h5p_default()), "attribute \(name)")
            defer { H5Aclose(a) }
            try buffer.withUnsafeBytes { try Self.check(H5Awrite(a, type, $0.baseAddress), "write \(name)") }
        } else {
            try Self.check(H5Tset_size(type, clipsafety_h5t_variable()), "string size")
            try Self.check(H5Tset_cset(type, H5T_CSET_UTF8), "string cset")
            let a = try Self.check(H5Acreate2(object, name, type, space, clipsafety_h5p_default(), clipsafety_h5p_default()), "attribute \(name)")
            defer { H5Aclose(a) }
            let cstrings = values.map { strdup($0) }
            defer { cstrings.forEach { free($0) } }
            try cstrings.withUnsafeBytes { try Self.check(H5Awrite(a, type, $0.baseAddress), "write \(name)") }
        }
    }

    /// The empty float64 array Keras writes as `weight_names` of a layer without weights.
    func emptyFloatArray(_ name: String, on path: String) throws {
        let object = try Self.check(H5Oopen(file, path, clipsafety_h5p_default()), "open \(path)")
        defer { H5Oclose(object) }
        let space = H5Screate_simple(1, [0], nil)
        defer { H5Sclose(space) }
        let a = try Self.check(H5Acreate2(object, name, clipsafety_h5t_ieee_f64le(), space, clipsafety_h5p_default(), clipsafety_h5p_default()), "attribute \(name)")
        H5Aclose(a)
    }

    func softLink(to target: String, at path: String) throws {
        try Self.check(H5Lcreate_soft(target, file, path, clipsafety_h5p_default(), clipsafety_h5p_default()), "soft link")
    }

    func externalLink(file other: String, object: String, at path: String) throws {
        try Self.check(H5Lcreate_external(other, object, file, path, clipsafety_h5p_default(), clipsafety_h5p_default()), "external link")
    }

    func delete(_ path: String) throws {
        try Self.check(H5Ldelete(file, path, clipsafety_h5p_default()), "delete \(path)")
    }

    /// The bytes of the file; the writer is closed afterwards.
    func finish() throws -> Data {
        let status = H5Fclose(file)
        file = -1
        try Self.check(status, "close")
        return try Data(contentsOf: URL(fileURLWithPath: path))
    }
}

/// One layer of a test model: its Keras class, name, config fields and weights (in Keras'
/// order, as `role`, shape, values).
struct TestLayer {
    var className: String
    var name: String
    var config: [String: Any] = [:]
    var weights: [(role: String, shape: [Int], values: [Double])] = []

    static func dense(_ name: String, inputs: Int, units: Int, activation: String = "linear", bias: Bool = true, seed: Double = 1) -> TestLayer {
        let kernel = (0..<(inputs * units)).map { i in sin(Double(i) * 0.37 + seed) * 0.5 }
        var weights: [(role: String, shape: [Int], values: [Double])] = [("kernel", [inputs, units], kernel)]
        if bias { weights.append(("bias", [units], (0..<units).map { cos(Double($0) + seed) * 0.1 })) }
        return TestLayer(className: "Dense", name: name,
                         config: ["units": units, "activation": activation, "use_bias": bias], weights: weights)
    }

    static func normalization(_ name: String, width: Int) -> TestLayer {
        TestLayer(className: "Normalization", name: name, config: ["axis": [-1], "invert": false, "mean": NSNull(), "variance": NSNull()],
                  weights: [("mean", [width], (0..<width).map { Double($0) * 0.1 - 0.2 }),
                            ("variance", [width], (0..<width).map { 0.5 + Double($0) * 0.25 })])
    }
}

/// Builds Keras model files (legacy `.h5` and `.keras`) around `HDF5TestWriter`, laid out as
/// Keras 3 writes them, with hooks to break them.
enum KerasFixture {
    enum Style { case functional, sequential, keras2Functional }

    /// The model config JSON for `layers` after an InputLayer of `width`.
    static func config(_ layers: [TestLayer], width: Int, style: Style = .functional, inputName: String = "embedding") -> [String: Any] {
        let input: [String: Any] = ["class_name": "InputLayer", "module": "keras.layers", "name": inputName,
                                    "config": ["name": inputName, "batch_shape": [NSNull(), width], "dtype": "float32"] as [String: Any],
                                    "inbound_nodes": [Any]()]
        var entries: [[String: Any]] = [input]
        var previous = inputName
        for l in layers {
            var cfg = l.config
            cfg["name"] = l.name
            var entry: [String: Any] = ["class_name": l.className, "module": "keras.layers", "name": l.name, "config": cfg]
            switch style {
            case .functional, .sequential:
                let tensor: [String: Any] = ["class_name": "__keras_tensor__",
                                             "config": ["shape": [NSNull(), width], "dtype": "float32", "keras_history": [previous, 0, 0]] as [String: Any]]
                entry["inbound_nodes"] = [["args": [tensor], "kwargs": [String: Any]()] as [String: Any]]
            case .keras2Functional:
                entry["inbound_nodes"] = [[[previous, 0, 0, [String: Any]()] as [Any]]]
            }
            if style == .sequential {
                entry["inbound_nodes"] = nil
                entry["name"] = nil
            }
            entries.append(entry)
            previous = l.name
        }
        switch style {
        case .sequential:
            return ["class_name": "Sequential", "config": ["name": "seq", "layers": entries] as [String: Any]]
        case .functional:
            return ["class_name": "Functional", "module": "keras.src.models.functional",
                    "config": ["name": "model", "layers": entries, "input_layers": [inputName, 0, 0], "output_layers": [previous, 0, 0]] as [String: Any]]
        case .keras2Functional:
            return ["class_name": "Functional",
                    "config": ["name": "model", "layers": entries, "input_layers": [[inputName, 0, 0]], "output_layers": [[previous, 0, 0]]] as [String: Any]]
        }
    }

    static func json(_ object: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    /// A legacy `.h5` (`model.save("x.h5")` layout). `weightSuffix` is `":0"` for Keras 2 names.
    static func legacyH5(_ layers: [TestLayer], width: Int, style: Style = .functional, type: HDF5TestWriter.FloatType = .f32,
                         weightSuffix: String = "", fixedLengthStrings: Bool = false, config: [String: Any]? = nil,
                         latestFormat: Bool = false, offsetSize: Int = 8, lengthSize: Int = 8,
                         edit: (HDF5TestWriter) throws -> Void = { _ in }) throws -> Data {
        let w = try HDF5TestWriter(latestFormat: latestFormat, offsetSize: offsetSize, lengthSize: lengthSize)
        try w.strings("model_config", on: "/", [try json(config ?? Self.config(layers, width: width, style: style))], scalar: true, fixedLength: fixedLengthStrings)
        try w.strings("keras_version", on: "/", ["3.15.1"], scalar: true)
        try w.group("/model_weights")
        let names = ["embedding"] + layers.map(\.name)
        try w.strings("layer_names", on: "/model_weights", names, fixedLength: fixedLengthStrings)
        try w.group("/model_weights/embedding")
        try w.emptyFloatArray("weight_names", on: "/model_weights/embedding")
        for l in layers {
            let g = "/model_weights/\(l.name)"
            try w.group(g)
            if l.weights.isEmpty {
                try w.emptyFloatArray("weight_names", on: g)
                continue
            }
            let weightNames = l.weights.map { "\(l.name)/\($0.role)\(weightSuffix)" }
            try w.strings("weight_names", on: g, weightNames, fixedLength: fixedLengthStrings)
            for (name, weight) in zip(weightNames, l.weights) {
                try w.floats("\(g)/\(name)", shape: weight.shape, weight.values, type: type)
            }
            if l.className == "Normalization" { try w.int64s("\(g)/\(l.name)/count", shape: [], [10]) }
        }
        try edit(w)
        return try w.finish()
    }

    /// Keras 3 tracking names of `layers` after the InputLayer (class in snake case, numbered per class).
    static func trackingNames(_ layers: [TestLayer]) -> [String] {
        var used: [String: Int] = [:]
        return layers.map { l in
            let base = ["Dense": "dense", "Normalization": "normalization", "ReLU": "re_lu", "Activation": "activation", "Dropout": "dropout"][l.className]
                ?? l.className.lowercased()
            if let n = used[base] { used[base] = n + 1; return "\(base)_\(n + 1)" }
            used[base] = 0
            return base
        }
    }

    /// The `model.weights.h5` of a `.keras` archive.
    static func weightsH5(_ layers: [TestLayer], type: HDF5TestWriter.FloatType = .f32, nameAttributes: Bool = true,
                          prefix: String = "layers", offsetSize: Int = 8, edit: (HDF5TestWriter) throws -> Void = { _ in }) throws -> Data {
        let w = try HDF5TestWriter(offsetSize: offsetSize, lengthSize: offsetSize)
        try w.group("/\(prefix)/input_layer/vars")
        if nameAttributes { try w.strings("name", on: "/\(prefix)/input_layer/vars", ["embedding"], scalar: true) }
        for (l, tracked) in zip(layers, trackingNames(layers)) {
            let vars = "/\(prefix)/\(tracked)/vars"
            try w.group(vars)
            if nameAttributes { try w.strings("name", on: vars, [l.name], scalar: true) }
            for (i, weight) in l.weights.enumerated() {
                try w.floats("\(vars)/\(i)", shape: weight.shape, weight.values, type: type)
            }
            if l.className == "Normalization" { try w.int64s("\(vars)/\(l.weights.count)", shape: [], [10]) }
        }
        try w.group("/vars")
        try edit(w)
        return try w.finish()
    }

    /// A `.keras` zip of `config.json`, `metadata.json` and the given weights file.
    static func kerasArchive(config: [String: Any], weights: Data?, metadata: String = #"{"keras_version": "3.15.1"}"#) throws -> Data {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        var members: [(name: String, data: Data)] = [("config.json", Data(try json(config).utf8)), ("metadata.json", Data(metadata.utf8))]
        if let weights { members.append(("model.weights.h5", weights)) }
        let path = dir.file("model.keras")
        try ZipArchive.write(members: members, to: path)
        return try Data(contentsOf: URL(fileURLWithPath: path))
    }

    static func keras(_ layers: [TestLayer], width: Int, style: Style = .functional, type: HDF5TestWriter.FloatType = .f32,
                      edit: (HDF5TestWriter) throws -> Void = { _ in }) throws -> Data {
        try kerasArchive(config: config(layers, width: width, style: style), weights: try weightsH5(layers, type: type, edit: edit))
    }

    /// What Keras computes for `layers` on `x` (row-major, `width` columns), in Double.
    static func expected(_ layers: [TestLayer], x: [Double], rows: Int, width: Int) -> [Double] {
        var a = x
        var w = width
        func act(_ name: String?) {
            switch name {
            case "relu": a = a.map { max($0, 0) }
            case "sigmoid": a = a.map { 1 / (1 + exp(-$0)) }
            default: break
            }
        }
        for l in layers {
            switch l.className {
            case "Dense":
                let units = l.config["units"] as! Int
                let k = l.weights[0].values
                let b = l.weights.count > 1 ? l.weights[1].values : Array(repeating: 0, count: units)
                var out = [Double](repeating: 0, count: rows * units)
                for r in 0..<rows {
                    for u in 0..<units {
                        var s = b[u]
                        for i in 0..<w { s += a[r * w + i] * k[i * units + u] }
                        out[r * units + u] = s
                    }
                }
                a = out
                w = units
                act(l.config["activation"] as? String)
            case "Normalization":
                let mean = (l.config["mean"] as? [Double]) ?? l.weights[0].values
                let variance = (l.config["variance"] as? [Double]) ?? l.weights[1].values
                for r in 0..<rows { for c in 0..<w { a[r * w + c] = (a[r * w + c] - mean[c]) / max(variance[c].squareRoot(), 1e-7) } }
            case "ReLU": act("relu")
            case "Activation": act(l.config["activation"] as? String)
            default: break
            }
        }
        return a
    }

    /// Deterministic test rows.
    static func rows(_ n: Int, width: Int) -> [Double] {
        (0..<(n * width)).map { sin(Double($0) * 1.7) }
    }
}
