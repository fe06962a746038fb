import Converters
import Foundation
import Runtime

/// `diff A B`: a structural and numeric comparison of two files of any formats clipsafety
/// reads. Each file is described by its format's reader (headers only); tensors are paired
/// (by name; by position when no name is shared; through the converter or the ONNX exporter
/// when a source meets its conversion), then each pair is read and compared element by element,
/// one pair at a time, so memory holds at most the two tensors being compared.
public enum ModelDiff {
    public struct Options: Sendable {
        /// Largest |a − b| that still counts as equal (0: values must be equal).
        public var atol: Double
        public var limits: ReaderLimits
        /// `--arch` for a source file converted to meet a native file.
        public var arch: String?

        public init(atol: Double = 0, limits: ReaderLimits = .init(), arch: String? = nil) {
            self.atol = atol
            self.limits = limits
            self.arch = arch
        }
    }

    /// One file as compared: what its reader found, and its bytes for converting it.
    public struct Side: Sendable {
        public var path: String
        public var description: FileDescription
        /// The mapped file, for converting it and releasing its pages; nil for a folder and
        /// for a side made in memory.
        let bytes: Data?
        /// A SavedModel folder, for converting it.
        let folder: SavedModelFolder?

        public init(path: String, description: FileDescription) {
            self.init(path: path, description: description, bytes: nil)
        }

        init(path: String, description: FileDescription, bytes: Data?, folder: SavedModelFolder? = nil) {
            self.path = path
            self.description = description
            self.bytes = bytes
            self.folder = folder
        }

        /// A SavedModel folder, described (members read within the limits); errors name it.
        static func describe(folder path: String, limits: ReaderLimits) throws -> Side {
            try withFile(path) {
                let folder = try SavedModelFolder(path: path, limits: limits)
                return Side(path: path, description: try folder.describe(limits: limits), bytes: nil, folder: folder)
            }
        }

        /// Describes `bytes` of `path`; errors name the file.
        static func describe(_ path: String, _ bytes: Data, limits: ReaderLimits) throws -> Side {
            try withFile(path) {
                Side(path: path, description: try FormatRegistry.describe(bytes, limits: limits), bytes: bytes)
            }
        }

        /// Lets the kernel drop the pages of `t` when its bytes are a view into this file's
        /// mapping (safetensors, `.npy`, stored zip members), so that resident memory follows
        /// the pair being compared, not the files. Copies (decoded data) are left alone.
        func release(_ t: Tensor) {
            guard let bytes else { return }
            bytes.withUnsafeBytes { file in
                t.data.withUnsafeBytes { tensor in
                    guard let f = file.baseAddress, let p = tensor.baseAddress, p >= f, p + tensor.count <= f + file.count else { return }
                    MappedFile.releasePages(of: t.data, upTo: t.data.count)
                }
            }
        }

        /// A native file, or an ONNX model clipsafety exported (its metadata says so).
        var target: Target? {
            switch description.format {
            case .native: return .native
            case .onnx where description.metadata.contains { $0.key == ONNXExport.formatKey }: return .onnxExport
            default: return nil
            }
        }
    }

    /// What a source can be turned into so that names line up.
    enum Target { case native, onnxExport }

    /// Maps (within the limits) and describes both files, then compares them; errors name the
    /// file they concern.
    public static func diff(_ pathA: String, _ pathB: String, options: Options = .init()) throws -> DiffReport {
        let limits = options.limits
        let isFolder = (SavedModelFolder.isFolder(pathA), SavedModelFolder.isFolder(pathB))
        let bytesA = isFolder.0 ? nil : try withFile(pathA) { try MappedFile.map(pathA, limits: limits) }
        let bytesB = isFolder.1 ? nil : try withFile(pathB) { try MappedFile.map(pathB, limits: limits) }
        let a = try bytesA.map { try Side.describe(pathA, $0, limits: limits) } ?? Side.describe(folder: pathA, limits: limits)
        let b = try bytesB.map { try Side.describe(pathB, $0, limits: limits) } ?? Side.describe(folder: pathB, limits: limits)
        return try diff(a, b, options: options)
    }

    /// Compares two described files: pairs their tensors (`DiffMatching`), then each pair's
    /// values, and their layers and signatures where both store them.
    public static func diff(_ a: Side, _ b: Side, options: Options = .init()) throws -> DiffReport {
        let (ma, mb, matching) = try DiffMatching.align(a, b, options: options)
        let plan = DiffMatching.pairs(ma.description.tensors, mb.description.tensors, byOrder: matching.method == .order)
        var tensors: [DiffReport.TensorDiff] = []
        for (ta, tb) in plan.pairs {
            tensors.append(try compare(ta, tb, a: ma, b: mb, atol: options.atol))
        }
        let info = { (s: Side) in DiffReport.FileInfo(path: s.path, format: s.description.format.rawValue, tensors: s.description.tensors.count) }
        return DiffReport(a: info(a), b: info(b), matching: matching, atol: options.atol,
                          onlyInA: plan.onlyInA.map(unmatched), onlyInB: plan.onlyInB.map(unmatched), tensors: tensors,
                          layers: layers(ma.description, mb.description), signatures: signatures(ma.description, mb.description))
    }

    static func unmatched(_ t: DescribedTensor) -> DiffReport.Unmatched { .init(name: t.name, dtype: t.dtype, shape: t.shape) }

    /// One pair: dtype and shape from the headers; values read (each side within its file's
    /// limits, errors naming that file) only when the element counts agree.
    static func compare(_ ta: DescribedTensor, _ tb: DescribedTensor, a: Side, b: Side, atol: Double) throws -> DiffReport.TensorDiff {
        var d = DiffReport.TensorDiff(
            name: ta.name, nameB: tb.name, dtypeA: ta.dtype, dtypeB: tb.dtype, shapeA: ta.shape, shapeB: tb.shape,
            elements: nil, compared: false, identical: false, dtypeChanged: ta.dtype != tb.dtype,
            shapeChanged: ta.shape != tb.shape, maxAbsDiff: nil, maxRelDiff: nil, worstIndex: nil, worstA: nil,
            worstB: nil, beyondAtol: nil, nanMismatches: nil, note: nil)
        guard let n = ta.elementCount, n == tb.elementCount else {
            d.note = "element counts differ: values not compared"
            return d
        }
        d.elements = n
        guard n > 0 else {  // nothing to read, whatever the element type
            d.compared = true
            (d.maxAbsDiff, d.maxRelDiff, d.beyondAtol, d.nanMismatches) = (0, 0, 0, 0)
            d.identical = !d.dtypeChanged && !d.shapeChanged
            return d
        }
        guard DType(rawValue: ta.dtype) != nil, DType(rawValue: tb.dtype) != nil else {
            d.note = "values not compared: clipsafety does not compute with \(DType(rawValue: ta.dtype) == nil ? ta.dtype : tb.dtype)"
            return d
        }
        // An element type a reader cannot give as numbers (Keras integer datasets) leaves the
        // pair uncompared; any other failure (a limit, damaged data) ends the diff.
        var unreadable: String?
        func read(_ t: DescribedTensor, _ path: String, _ side: String) throws -> Tensor? {
            do {
                return try withFile(path) { try t.read() }
            } catch let e as FileError where [.unsupported, .mismatch].contains(e.underlying.kind) {
                unreadable = "values not compared: \(side) cannot be read as numbers (\(e.underlying.message))"
                return nil
            }
        }
        guard let x = try read(ta, a.path, "A"), let y = try read(tb, b.path, "B") else {
            d.note = unreadable
            return d
        }
        let values = ValueDiff.compare(x, y, atol: atol)
        a.release(x)
        b.release(y)
        d.compared = true
        d.maxAbsDiff = values.maxAbs
        d.maxRelDiff = values.maxRel
        d.beyondAtol = values.beyondAtol
        d.nanMismatches = values.nanMismatches
        if let w = values.worst {
            d.worstIndex = ValueDiff.multiIndex(w.index, shape: ta.shape)
            (d.worstA, d.worstB) = (w.a, w.b)
        }
        d.identical = !d.dtypeChanged && !d.shapeChanged && values.beyondAtol == 0
        return d
    }

    /// Layers by name, when both files store layers (Keras models, ONNX nodes).
    static func layers(_ a: FileDescription, _ b: FileDescription) -> DiffReport.LayerDiff? {
        guard !a.layers.isEmpty, !b.layers.isEmpty else { return nil }
        let inA = Dictionary(a.layers.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let inB = Dictionary(b.layers.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let entry = { (l: DescribedLayer) in DiffReport.LayerEntry(name: l.name, className: l.className) }
        var changed: [DiffReport.LayerChange] = []
        for la in a.layers {
            guard let lb = inB[la.name], la.className != lb.className || la.inbound != lb.inbound else { continue }
            changed.append(.init(name: la.name, classA: la.className, classB: lb.className, inboundA: la.inbound, inboundB: lb.inbound))
        }
        return .init(onlyInA: a.layers.filter { inB[$0.name] == nil }.map(entry),
                     onlyInB: b.layers.filter { inA[$0.name] == nil }.map(entry), changed: changed)
    }

    /// Signatures as `key: input → output`, when both files store some.
    static func signatures(_ a: FileDescription, _ b: FileDescription) -> DiffReport.SignatureDiff? {
        guard !a.signatures.isEmpty, !b.signatures.isEmpty else { return nil }
        func names(_ ports: [ServingSignature.Port]) -> String { ports.map(\.name).joined(separator: ", ") }
        func id(_ s: ServingSignature) -> String { "\(s.key): \(names(s.inputs)) → \(names(s.outputs))" }
        func port(_ p: ServingSignature.Port) -> String {
            "\(p.dtype) [" + (p.shape.map { $0.map { $0.map(String.init) ?? "?" }.joined(separator: ", ") } ?? "…") + "]"
        }
        func types(_ s: ServingSignature) -> String {
            s.inputs.map(port).joined(separator: ", ") + " → " + s.outputs.map(port).joined(separator: ", ")
        }
        let inA = Dictionary(a.signatures.map { (id($0), $0) }, uniquingKeysWith: { first, _ in first })
        let inB = Dictionary(b.signatures.map { (id($0), $0) }, uniquingKeysWith: { first, _ in first })
        var changed: [DiffReport.SignatureChange] = []
        for s in a.signatures {
            guard let t = inB[id(s)], types(s) != types(t) else { continue }
            changed.append(.init(signature: id(s), a: types(s), b: types(t)))
        }
        return .init(onlyInA: a.signatures.map(id).filter { inB[$0] == nil },
                     onlyInB: b.signatures.map(id).filter { inA[$0] == nil }, changed: changed)
    }
}
