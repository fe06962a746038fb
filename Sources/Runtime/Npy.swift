import Core
import Foundation

/// Element types `.npy` files may hold here. Object dtypes (`|O`, pickles) are refused.
public enum NpyDType: String, Sendable, CaseIterable {
    case f2, f4, f8, i8, u1, b1

    public var byteSize: Int {
        switch self {
        case .f2: return 2
        case .f4: return 4
        case .f8, .i8: return 8
        case .u1, .b1: return 1
        }
    }

    /// The descr written for this type (`<f4`, `|u1`, …).
    public var descr: String {
        switch self {
        case .u1, .b1: return "|" + rawValue
        default: return "<" + rawValue
        }
    }

    public var embeddingElementType: EmbeddingElementType? {
        switch self {
        case .f2: return .float16
        case .f4: return .float32
        case .f8: return .float64
        default: return nil
        }
    }
}

/// Limits applied while reading `.npy` headers.
public struct NpyLimits: Sendable {
    /// Largest header accepted; NumPy itself writes a few hundred bytes.
    public var maxHeaderBytes: Int = 1 << 20
    public init() {}
}

/// An n-dimensional array from a `.npy` file: versions 1–3, dtypes `<f2 <f4 <f8 <i8 |u1 |b1`
/// (big-endian `>` converted), C or Fortran order.
///
/// `data` always holds little-endian, C-order elements. A little-endian C-order file is not
/// copied: `data` is a slice of the (memory-mapped) input. Other layouts are converted once.
public struct NpyArray: Sendable {
    public var dtype: NpyDType
    public var shape: [Int]
    public var data: Data
    /// True when `data` points into a read-only file mapping (see `releaseRows(before:)`).
    public private(set) var isFileMapped = false

    public init(dtype: NpyDType, shape: [Int], data: Data) throws {
        guard let (_, bytes) = checkedByteCount(shape: shape, dtype: dtype.byteSize), bytes == data.count else {
            throw ClipSafetyError.malformed("npy: \(dtype.descr) \(shape) does not match \(data.count) data bytes")
        }
        self.dtype = dtype
        self.shape = shape
        self.data = data
    }

    public var elementCount: Int { shape.reduce(1, *) }

    /// Reads a file, memory-mapped.
    public init(contentsOf path: String, limits: NpyLimits = .init()) throws {
        let bytes = try MappedFile.map(path)
        try self.init(bytes: bytes, limits: limits)
        // A view (not a converted copy) of a non-empty mapping.
        isFileMapped = !bytes.isEmpty && data.count > 0 && data.withUnsafeBytes { d in
            bytes.withUnsafeBytes { b in d.baseAddress! >= b.baseAddress! && d.baseAddress! < b.baseAddress! + b.count }
        }
    }

    /// Lets the kernel drop the pages of rows `0..<row` of a memory-mapped matrix, so that a
    /// sequential pass over a file larger than memory keeps a bounded resident set. The rows
    /// stay readable (they are read from the file again if touched). No effect on in-memory data.
    public func releaseRows(before row: Int) {
        guard isFileMapped, shape.count >= 1, row > 0 else { return }
        let rowBytes = shape.dropFirst().reduce(dtype.byteSize, *)
        let end = Swift.min(row, shape[0]) * rowBytes
        MappedFile.releasePages(of: data, upTo: end)
    }

    public init(bytes: Data, limits: NpyLimits = .init()) throws {
        var cursor = ByteCursor(bytes)
        guard let magic = cursor.readBytes(6), magic.elementsEqual([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]) else {
            throw ClipSafetyError.malformed("npy: missing the \\x93NUMPY magic")
        }
        guard let major = cursor.readInteger(UInt8.self, endianness: .little),
              cursor.readInteger(UInt8.self, endianness: .little) != nil else {
            throw ClipSafetyError.truncated("npy: file ends inside the version")
        }
        let headerLength: Int
        switch major {
        case 1:
            guard let n = cursor.readInteger(UInt16.self, endianness: .little) else { throw ClipSafetyError.truncated("npy: file ends inside the header length") }
            headerLength = Int(n)
        case 2, 3:
            guard let n = cursor.readInteger(UInt32.self, endianness: .little) else { throw ClipSafetyError.truncated("npy: file ends inside the header length") }
            headerLength = Int(n)
        default:
            throw ClipSafetyError.unsupported("npy: format version \(major) (supported: 1, 2, 3)")
        }
        guard headerLength <= limits.maxHeaderBytes else {
            throw ClipSafetyError.limitExceeded("npy: header of \(headerLength) bytes exceeds the limit of \(limits.maxHeaderBytes)")
        }
        guard let headerBytes = cursor.readBytes(headerLength) else {
            throw ClipSafetyError.truncated("npy: header of \(headerLength) bytes runs past the end of the file")
        }
        let encoding: String.Encoding = major == 3 ? .utf8 : .isoLatin1
        guard let header = String(data: headerBytes, encoding: encoding) else {
            throw ClipSafetyError.malformed("npy: header is not text")
        }
        let parsed = try NpyHeader.parse(header)
        guard let dtype = NpyDType(rawValue: String(parsed.descr.dropFirst())) else {
            if parsed.descr.contains("O") {
                throw ClipSafetyError.unsafe("npy: dtype '\(parsed.descr)' holds Python objects (a pickle); refused")
            }
            throw ClipSafetyError.unsupported("npy: dtype '\(parsed.descr)' (supported: <f2 <f4 <f8 <i8 |u1 |b1)")
        }
        let order = parsed.descr.first!
        let bigEndian: Bool
        switch order {
        case "<", "=": bigEndian = false
        case ">": bigEndian = dtype.byteSize > 1
        case "|": bigEndian = false
        default: throw ClipSafetyError.malformed("npy: descr '\(parsed.descr)' has no byte order")
        }
        guard let (_, byteCount) = checkedByteCount(shape: parsed.shape, dtype: dtype.byteSize) else {
            throw ClipSafetyError.malformed("npy: shape \(parsed.shape) overflows")
        }
        guard cursor.remaining >= byteCount else {
            throw ClipSafetyError.truncated("npy: shape \(parsed.shape) needs \(byteCount) data bytes, the file has \(cursor.remaining)")
        }
        guard cursor.remaining == byteCount else {
            throw ClipSafetyError.malformed("npy: \(cursor.remaining - byteCount) bytes after the data")
        }
        var data = cursor.peekBytes(byteCount)!
        if bigEndian { data = Self.byteSwapped(data, width: dtype.byteSize) }
        if parsed.fortranOrder && parsed.shape.count > 1 {
            data = Self.fortranToC(data, shape: parsed.shape, width: dtype.byteSize)
        }
        self.dtype = dtype
        self.shape = parsed.shape
        self.data = data
    }

    static func byteSwapped(_ data: Data, width: Int) -> Data {
        var out = Data(data)
        out.withUnsafeMutableBytes { p in
            var i = 0
            while i < p.count {
                var lo = i, hi = i + width - 1
                while lo < hi { p.swapAt(lo, hi); lo += 1; hi -= 1 }
                i += width
            }
        }
        return out
    }

    static func fortranToC(_ data: Data, shape: [Int], width: Int) -> Data {
        let count = shape.reduce(1, *)
        var out = Data(count: data.count)
        // Fortran strides (in elements): first axis fastest.
        var fStrides = [Int](repeating: 1, count: shape.count)
        for i in 1..<shape.count { fStrides[i] = fStrides[i - 1] * shape[i - 1] }
        data.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                var index = [Int](repeating: 0, count: shape.count)
                for c in 0..<count {
                    var f = 0
                    for a in 0..<shape.count { f += index[a] * fStrides[a] }
                    dst.baseAddress!.advanced(by: c * width).copyMemory(from: src.baseAddress!.advanced(by: f * width), byteCount: width)
                    var a = shape.count - 1
                    while a >= 0 {
                        index[a] += 1
                        if index[a] < shape[a] { break }
                        index[a] = 0
                        a -= 1
                    }
                }
            }
        }
        return out
    }

    /// The bytes of a version-1 `.npy` file (version 2 when the header needs it), C order.
    public func serialized() -> Data {
        var out = Self.headerBytes(dtype: dtype, shape: shape)
        out.append(data)
        return out
    }

    /// A `.npy` header for C-order data of `shape`, padded so the data starts at a multiple of 64.
    public static func headerBytes(dtype: NpyDType, shape: [Int]) -> Data {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var dict = "{'descr': '\(dtype.descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        var version: UInt8 = 1
        var prefix = 10
        if dict.utf8.count + 1 + prefix > 65535 { version = 2; prefix = 12 }
        let total = prefix + dict.utf8.count + 1
        dict += String(repeating: " ", count: (64 - total % 64) % 64) + "\n"
        var out = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, version, 0])
        if version == 1 {
            withUnsafeBytes(of: UInt16(dict.utf8.count).littleEndian) { out.append(contentsOf: $0) }
        } else {
            withUnsafeBytes(of: UInt32(dict.utf8.count).littleEndian) { out.append(contentsOf: $0) }
        }
        out.append(contentsOf: Array(dict.utf8))
        return out
    }

    /// Values as Float (float dtypes, integers and booleans converted).
    public func floatValues() -> [Float] {
        let n = elementCount
        return data.withUnsafeBytes { raw in
            switch dtype {
            case .f2: return (0..<n).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 2, as: Float16.self)) }
            case .f4: return (0..<n).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
            case .f8: return (0..<n).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self)) }
            case .i8: return (0..<n).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
            case .u1, .b1: return (0..<n).map { Float(raw.load(fromByteOffset: $0, as: UInt8.self)) }
            }
        }
    }

    public func int64Values() -> [Int64] {
        let n = elementCount
        return data.withUnsafeBytes { raw in
            switch dtype {
            case .i8: return (0..<n).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self) }
            case .u1, .b1: return (0..<n).map { Int64(raw.load(fromByteOffset: $0, as: UInt8.self)) }
            case .f2, .f4, .f8: return floatValues().map { Int64($0) }
            }
        }
    }

    public init(shape: [Int], floats: [Float]) {
        self.dtype = .f4
        self.shape = shape
        self.data = floats.withUnsafeBytes { Data($0) }
    }

    public init(shape: [Int], doubles: [Double]) {
        self.dtype = .f8
        self.shape = shape
        self.data = doubles.withUnsafeBytes { Data($0) }
    }

    public init(shape: [Int], int64s: [Int64]) {
        self.dtype = .i8
        self.shape = shape
        self.data = int64s.withUnsafeBytes { Data($0) }
    }

    /// Calls `body` with rows `[start, start + count)` of a 2-D float array as an embedding
    /// batch, without copying when the data is suitably aligned.
    public func withRows<R>(_ start: Int, _ count: Int, _ body: (EmbeddingBatch) throws -> R) throws -> R {
        guard shape.count == 2, let type = dtype.embeddingElementType else {
            throw ClipSafetyError.mismatch("npy: expected a 2-D float16/32/64 matrix, found \(dtype.descr) \(shape)")
        }
        let columns = shape[1]
        precondition(start >= 0 && count >= 0 && start + count <= shape[0])
        let width = type.byteSize
        let byteStart = start * columns * width
        let byteCount = count * columns * width
        return try data.withUnsafeBytes { raw in
            let p = raw.baseAddress!.advanced(by: byteStart)
            if Int(bitPattern: p) % width == 0 {
                return try body(EmbeddingBatch(base: p, rows: count, columns: columns, elementType: type))
            }
            let copy = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(byteCount, 1), alignment: 16)
            defer { copy.deallocate() }
            copy.copyMemory(from: p, byteCount: byteCount)
            return try body(EmbeddingBatch(base: copy, rows: count, columns: columns, elementType: type))
        }
    }
}

/// Byte count for `shape` of `width`-byte elements, or nil on overflow or a negative dimension.
public func checkedByteCount(shape: [Int], dtype width: Int) -> (elements: Int, bytes: Int)? {
    var elements = 1
    for d in shape {
        guard d >= 0 else { return nil }
        let (p, o) = elements.multipliedReportingOverflow(by: d)
        if o { return nil }
        elements = p
    }
    let (bytes, o) = elements.multipliedReportingOverflow(by: width)
    return o ? nil : (elements, bytes)
}

/// The Python-literal dict of a `.npy` header: `{'descr': …, 'fortran_order': …, 'shape': (…), }`.
enum NpyHeader {
    struct Parsed { var descr: String; var fortranOrder: Bool; var shape: [Int] }

    static func parse(_ text: String) throws -> Parsed {
        var s = Substring(text)
        func fail(_ what: String) -> ClipSafetyError { .malformed("npy: header \(what)") }
        func skipSpace() { while let c = s.first, c == " " || c == "\n" || c == "\t" || c == "\r" { s.removeFirst() } }
        func expect(_ c: Character) throws {
            skipSpace()
            guard s.first == c else { throw fail("expected '\(c)'") }
            s.removeFirst()
        }
        func string() throws -> String {
            skipSpace()
            guard let q = s.first, q == "'" || q == "\"" else { throw fail("expected a string") }
            s.removeFirst()
            guard let end = s.firstIndex(of: q) else { throw fail("has an unterminated string") }
            let v = String(s[..<end])
            s = s[s.index(after: end)...]
            return v
        }
        var descr: String?
        var fortran: Bool?
        var shape: [Int]?
        var seen = Set<String>()
        try expect("{")
        while true {
            skipSpace()
            if s.first == "}" { s.removeFirst(); break }
            let key = try string()
            guard seen.insert(key).inserted else {
                throw fail("names '\(key)' twice (NumPy would keep the last, a strict reader the first)")
            }
            try expect(":")
            skipSpace()
            switch key {
            case "descr":
                guard s.first == "'" || s.first == "\"" else {
                    throw ClipSafetyError.unsupported("npy: header descr is not a string literal (structured dtypes and expressions are not supported)")
                }
                descr = try string()
            case "fortran_order":
                if s.hasPrefix("True") { fortran = true; s = s.dropFirst(4) }
                else if s.hasPrefix("False") { fortran = false; s = s.dropFirst(5) }
                else { throw fail("has a fortran_order that is not True or False") }
            case "shape":
                try expect("(")
                var dims: [Int] = []
                while true {
                    skipSpace()
                    if s.first == ")" { s.removeFirst(); break }
                    var digits = ""
                    while let c = s.first, c.isASCII, c.isNumber { digits.append(c); s.removeFirst() }
                    if s.first == "L" { s.removeFirst() }
                    guard !digits.isEmpty, digits.count <= 18, let d = Int(digits) else { throw fail("has an invalid shape") }
                    dims.append(d)
                    skipSpace()
                    if s.first == "," { s.removeFirst() }
                    guard dims.count <= 32 else { throw fail("has more than 32 dimensions") }
                }
                shape = dims
            default:
                throw fail("has an unknown key '\(key)'")
            }
            skipSpace()
            if s.first == "," { s.removeFirst() }
        }
        guard let descr, let fortran, let shape else { throw fail("lacks descr, fortran_order or shape") }
        guard !descr.isEmpty else { throw fail("has an empty descr") }
        return Parsed(descr: descr, fortranOrder: fortran, shape: shape)
    }
}
