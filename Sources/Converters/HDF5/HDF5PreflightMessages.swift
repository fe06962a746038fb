import Foundation
import Runtime

/// A dataspace message (section IV.A.2.b): the dimensions, `[]` for a scalar; null has none.
struct HDF5Dataspace {
    var dims: [UInt64]
    var isNull: Bool
    /// Product of the dimensions (0 for null), nil when it overflows.
    var elements: UInt64? {
        if isNull { return 0 }
        var n: UInt64 = 1
        for d in dims {
            let (p, o) = n.multipliedReportingOverflow(by: d)
            if o { return nil }
            n = p
        }
        return n
    }

    init(_ body: Data, geometry: HDF5Geometry, what: String) throws {
        var m = ByteCursor(body)
        guard let version = m.readInteger(UInt8.self, endianness: .little), let rank = m.readInteger(UInt8.self, endianness: .little),
              let flags = m.readInteger(UInt8.self, endianness: .little) else { throw Self.bad(what, "is cut short") }
        switch version {
        case 1:
            guard m.skip(5) else { throw Self.bad(what, "is cut short") }
            isNull = false
        case 2:
            guard let type = m.readInteger(UInt8.self, endianness: .little), type <= 2 else { throw Self.bad(what, "has an unknown class") }
            isNull = type == 2
        default: throw Self.bad(what, "has version \(version)")
        }
        guard rank <= 32 else { throw Self.bad(what, "has rank \(rank), over HDF5's 32") }
        dims = try (0..<Int(rank)).map { _ in
            guard let d = geometry.readLength(&m) else { throw Self.bad(what, "is cut short") }
            return d
        }
        // libhdf5 1.10 also decodes the maximum dimensions, unchecked, when the flag says so.
        guard flags & 0x01 == 0 || m.hasBytes(Int(rank) * geometry.lengthSize) else { throw Self.bad(what, "is cut short") }
    }

    private static func bad(_ what: String, _ reason: String) -> ClipSafetyError {
        .malformed("HDF5: the dataspace of \(what) \(reason)")
    }
}

/// The stored element size of a datatype message (section IV.A.2.d), after refusing classes
/// whose properties libhdf5 1.10 decodes without bounds checks (member names of compounds and
/// enums are strdup()ed, array and opaque properties trusted): integers, floats, bitfields,
/// strings and variable-length sequences or strings of those pass. Variable-length values are
/// stored as a length, a global heap address and an index.
struct HDF5Datatype {
    /// Bytes one element takes in the file.
    var storedSize: UInt64

    init(_ body: Data, geometry: HDF5Geometry, what: String) throws {
        var m = ByteCursor(body)
        let (typeClass, size) = try Self.check(&m, nested: false, what: what)
        storedSize = typeClass == 9 ? UInt64(4 + geometry.offsetSize + 4) : UInt64(size)
    }

    /// Bytes of the properties of each class let through.
    private static let propertyBytes: [UInt8: Int] = [0: 4, 1: 12, 3: 0, 4: 4]
    private static let classNames: [UInt8: String] = [2: "time", 5: "opaque", 6: "compound", 7: "reference", 8: "enum", 10: "array"]

    /// One datatype's class and size; a variable-length type's base must be a plain one.
    private static func check(_ m: inout ByteCursor, nested: Bool, what: String) throws -> (UInt8, UInt32) {
        let cut = ClipSafetyError.malformed("HDF5: the datatype of \(what) is cut short")
        guard let classAndVersion = m.readInteger(UInt8.self, endianness: .little), m.skip(3),
              let size = m.readInteger(UInt32.self, endianness: .little) else { throw cut }
        let typeClass = classAndVersion & 0x0f
        if typeClass == 9 && !nested {
            _ = try check(&m, nested: true, what: what)
        } else if let n = propertyBytes[typeClass] {
            guard m.skip(n) else { throw cut }
        } else {
            throw ClipSafetyError.unsupported("HDF5: \(what) has a datatype of class \(classNames[typeClass] ?? String(typeClass)), which is not read")
        }
        return (typeClass, size)
    }
}

extension HDF5Preflight {
    /// An attribute message (section IV.A.2.m): its name must end inside it (libhdf5 1.10
    /// strdup()s it), its name, datatype and dataspace must fit, they may not be shared, and
    /// its data must hold every element its dataspace declares (libhdf5 copies that many bytes).
    func checkAttribute(_ body: Data, header: UInt64, path: String) throws {
        var m = ByteCursor(body)
        func bad(_ what: String) -> ClipSafetyError {
            .malformed("HDF5: an attribute message in the object header at \(header) \(what)")
        }
        guard let version = m.readInteger(UInt8.self, endianness: .little), let flags = m.readInteger(UInt8.self, endianness: .little),
              let nameSize = m.readInteger(UInt16.self, endianness: .little),
              let typeSize = m.readInteger(UInt16.self, endianness: .little),
              let spaceSize = m.readInteger(UInt16.self, endianness: .little) else { throw bad("is cut short") }
        func padded(_ n: UInt16) -> Int { version == 1 ? (Int(n) + 7) & ~7 : Int(n) }
        switch version {
        case 1: break
        case 2, 3:
            guard flags & 0x03 == 0 else { throw ClipSafetyError.unsupported("HDF5: an attribute of \(Self.describe(path)) has a shared datatype or dataspace") }
            if version == 3 { guard m.skip(1) else { throw bad("is cut short") } }
        default: throw ClipSafetyError.unsupported("HDF5: attribute message version \(version) in the object header at \(header)")
        }
        guard nameSize > 0, let name = m.peekBytes(Int(nameSize)), name.contains(0) else {
            throw bad("has a name that does not end inside it")
        }
        guard m.skip(padded(nameSize)), let type = m.readBytes(padded(typeSize)), let space = m.readBytes(padded(spaceSize)) else {
            throw bad("declares a name, type and shape larger than the message")
        }
        try checkAttributeData(type: type, space: space, dataBytes: m.remaining, path: path)
    }

    /// The attribute's data must hold elements × stored element size bytes.
    private func checkAttributeData(type: Data, space: Data, dataBytes: Int, path: String) throws {
        let what = "an attribute of \(Self.describe(path))"
        let t = try HDF5Datatype(type, geometry: geometry, what: what)
        let s = try HDF5Dataspace(space, geometry: geometry, what: what)
        guard let elements = s.elements else {
            throw ClipSafetyError.malformed("HDF5: \(what) declares more elements than can be counted")
        }
        let (needed, overflow) = elements.multipliedReportingOverflow(by: t.storedSize)
        guard !overflow, needed <= UInt64(dataBytes) else {
            throw ClipSafetyError.malformed("HDF5: \(what) declares \(elements) elements of \(t.storedSize) bytes but holds \(dataBytes) bytes of data")
        }
    }

    /// A link info message (section IV.A.2.c): links kept in a fractal heap are refused.
    func checkLinkInfo(_ body: Data, path: String) throws {
        var m = ByteCursor(body)
        guard m.skip(1), let flags = m.readInteger(UInt8.self, endianness: .little), m.skip(flags & 0x01 != 0 ? 8 : 0),
              let heap = geometry.readAddress(&m) else {
            throw ClipSafetyError.malformed("HDF5: the link info of group \(Self.describe(path)) is cut short")
        }
        guard heap == geometry.undefinedAddress else {
            throw ClipSafetyError.unsupported("HDF5: group \(Self.describe(path)) keeps its links in dense (fractal heap) storage, which clipsafety does not read")
        }
    }

    /// A link message (section IV.A.2.g): a hard link's target is queued; soft links (which can
    /// loop), external links (to other files) and user-defined links are refused.
    mutating func queueLink(_ body: Data, path: String) throws {
        var m = ByteCursor(body)
        func cut() -> ClipSafetyError { .malformed("HDF5: a link message of group \(Self.describe(path)) is cut short") }
        guard m.readInteger(UInt8.self, endianness: .little) == 1, let flags = m.readInteger(UInt8.self, endianness: .little) else { throw cut() }
        var linkType: UInt8 = 0
        if flags & 0x08 != 0 { guard let t = m.readInteger(UInt8.self, endianness: .little) else { throw cut() }; linkType = t }
        guard m.skip(flags & 0x04 != 0 ? 8 : 0), m.skip(flags & 0x10 != 0 ? 1 : 0),
              let nameLength = m.readUnsigned(width: 1 << Int(flags & 0x03)), nameLength <= UInt64(m.remaining),
              let name = m.readBytes(Int(nameLength)) else { throw cut() }
        let child = Self.join(path, String(decoding: name, as: UTF8.self))
        switch linkType {
        case 0:
            guard let address = geometry.readAddress(&m) else { throw cut() }
            queue(address, path: child)
        case 1:
            try outside(.softLink, path: child, target: Self.linkValue(&m, external: false),
                        message: "HDF5: \(Self.describe(child)) is a soft link; only hard links are followed")
        case 64:
            try outside(.externalLink, path: child, target: Self.linkValue(&m, external: true),
                        message: "HDF5: \(Self.describe(child)) is an external link to another file; only hard links are followed")
        default:
            try outside(.userLink, path: child, target: "type \(linkType)",
                        message: "HDF5: \(Self.describe(child)) is a user-defined link (type \(linkType)); only hard links are followed")
        }
    }

    /// A soft link's path, or an external link's `file:object` (a version byte, then two
    /// NUL-terminated strings); empty when the message is cut short.
    static func linkValue(_ m: inout ByteCursor, external: Bool) -> String {
        guard let length = m.readInteger(UInt16.self, endianness: .little), let value = m.readBytes(Int(length)) else { return "" }
        let strings = (external ? value.dropFirst() : value).split(separator: 0, omittingEmptySubsequences: false)
        let parts = strings.prefix(external ? 2 : 1).map { String(decoding: $0, as: UTF8.self) }
        if external { return parts.joined(separator: ":") }
        return parts.first ?? ""
    }
}
