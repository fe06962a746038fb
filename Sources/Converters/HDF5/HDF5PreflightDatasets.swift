import Foundation
import Runtime

/// The filters of a dataset's pipeline (section IV.A.2.l), by ID.
enum HDF5Filter {
    static let deflate: UInt16 = 1, shuffle: UInt16 = 2, fletcher32: UInt16 = 3

    /// The filters of a pipeline message, refusing what libhdf5 should not run: filters other
    /// than deflate, shuffle and Fletcher32 (mandatory or optional: optional ones built into
    /// libhdf5 would still run), any filter twice, Fletcher32 anywhere but last (it must check
    /// the stored bytes themselves), shuffle after deflate.
    static func pipeline(_ body: Data, what: String) throws -> [UInt16] {
        var m = ByteCursor(body)
        guard let version = m.readInteger(UInt8.self, endianness: .little), version == 1 || version == 2,
              let count = m.readInteger(UInt8.self, endianness: .little), count <= 32, m.skip(version == 1 ? 6 : 0) else {
            throw ClipSafetyError.malformed("HDF5: the filter pipeline of \(what) is cut short or of an unknown version")
        }
        let ids = try (0..<Int(count)).map { _ in try filter(&m, version: version, what: what) }
        guard Set(ids).count == ids.count, !ids.dropLast().contains(fletcher32),
              !(ids.firstIndex(of: deflate).map { d in ids.firstIndex(of: shuffle).map { $0 > d } ?? false } ?? false) else {
            throw ClipSafetyError.unsupported("HDF5: the filters of \(what) are in an order no HDF5 writer uses (\(ids))")
        }
        return ids
    }

    /// One filter's ID, after checking it is allowed and its parameters fit.
    private static func filter(_ m: inout ByteCursor, version: UInt8, what: String) throws -> UInt16 {
        func cut() -> ClipSafetyError { .malformed("HDF5: the filter pipeline of \(what) is cut short") }
        guard let id = m.readInteger(UInt16.self, endianness: .little) else { throw cut() }
        var nameLength: UInt16 = 0
        if version == 1 || id >= 256 { guard let n = m.readInteger(UInt16.self, endianness: .little) else { throw cut() }; nameLength = n }
        guard let flags = m.readInteger(UInt16.self, endianness: .little), let count = m.readInteger(UInt16.self, endianness: .little),
              m.skip(version == 1 ? (Int(nameLength) + 7) & ~7 : Int(nameLength)) else { throw cut() }
        let values = try (0..<Int(count)).map { _ in
            guard let v = m.readInteger(UInt32.self, endianness: .little) else { throw cut() }
            return v
        }
        if version == 1 && count % 2 == 1 { guard m.skip(4) else { throw cut() } }
        guard [deflate, shuffle, fletcher32].contains(id) else {
            throw ClipSafetyError.unsupported("HDF5: \(what) needs \(flags & 1 != 0 ? "optional" : "mandatory") filter \(id); only deflate, shuffle and Fletcher32 are run")
        }
        guard id != deflate || (values.count == 1 && values[0] <= 9) else {
            throw ClipSafetyError.malformed("HDF5: the deflate filter of \(what) has bad parameters")
        }
        return id
    }
}

/// A dataset's extent and storage facts the chunk checks need.
struct HDF5DatasetShape {
    var what: String
    var dims: [UInt64]
    var elementSize: UInt64
    /// elements × element size.
    var bytes: UInt64
    /// Filter IDs in pipeline order.
    var filters: [UInt16]
}

extension HDF5Preflight {
    /// A dataset's layout (section IV.A.2.i), against its dataspace, datatype, filters and
    /// fill value: no storage outside the file, no data missing (libhdf5 would make it up from
    /// the fill value), compact and contiguous data exactly as large as the extent.
    mutating func checkDataset(_ d: DatasetMessages, path: String) throws {
        let what = "dataset \(Self.describe(path))"
        guard let space = d.space, let type = d.type, let layout = d.layout else {
            throw ClipSafetyError.malformed("HDF5: \(what) has a layout but no dataspace or datatype")
        }
        guard let elements = space.elements, case let (bytes, false) = elements.multipliedReportingOverflow(by: type.storedSize) else {
            throw ClipSafetyError.limitExceeded("HDF5: \(what) declares more bytes than can be counted")
        }
        for fill in d.fillValues { try Self.checkFillValue(fill.body, old: fill.type == 0x0004, elementSize: type.storedSize, what: what) }
        let shape = HDF5DatasetShape(what: what, dims: space.dims, elementSize: type.storedSize, bytes: bytes, filters: d.filters ?? [])
        var m = ByteCursor(layout)
        guard let version = m.readInteger(UInt8.self, endianness: .little), let layoutClass = m.readInteger(UInt8.self, endianness: .little) else {
            throw ClipSafetyError.malformed("HDF5: the layout of \(what) is cut short")
        }
        guard version == 3 || version == 4 else { throw ClipSafetyError.unsupported("HDF5: \(what) has a version \(version) layout (3 and 4 are read)") }
        guard layoutClass == 2 || shape.filters.isEmpty else { throw ClipSafetyError.malformed("HDF5: \(what) has filters but is not chunked") }
        switch layoutClass {
        case 0: try Self.checkCompact(&m, shape)
        case 1: try checkContiguous(&m, shape)
        case 2 where version == 3: try checkChunked(&m, shape)
        case 2: try checkChunkedV4(&m, shape)
        case 3: try outside(.virtualDataset, path: path, message: "HDF5: \(what) is a virtual dataset drawing on other files; refused")
        default: throw ClipSafetyError.malformed("HDF5: \(what) has an unknown layout class \(layoutClass)")
        }
    }

    /// A fill value message (old: IV.A.2.e, new: IV.A.2.f): a defined value must fit in the
    /// message and be one element (libhdf5 1.10 copies its declared size unchecked).
    private static func checkFillValue(_ body: Data, old: Bool, elementSize: UInt64, what: String) throws {
        var m = ByteCursor(body)
        let defined: Bool
        if old {
            defined = true
        } else {
            guard let version = m.readInteger(UInt8.self, endianness: .little), (1...3).contains(version) else {
                throw ClipSafetyError.malformed("HDF5: the fill value of \(what) is cut short or of an unknown version")
            }
            if version == 3 {
                guard let flags = m.readInteger(UInt8.self, endianness: .little) else { throw ClipSafetyError.malformed("HDF5: the fill value of \(what) is cut short") }
                defined = flags & 0x20 != 0
            } else {
                guard m.skip(2), let d = m.readInteger(UInt8.self, endianness: .little) else { throw ClipSafetyError.malformed("HDF5: the fill value of \(what) is cut short") }
                defined = d != 0 || version == 1
            }
        }
        guard defined else { return }
        guard let size = m.readInteger(UInt32.self, endianness: .little), Int(size) <= m.remaining, size == 0 || UInt64(size) == elementSize else {
            throw ClipSafetyError.malformed("HDF5: the fill value of \(what) does not fit its message or is not one \(elementSize)-byte element")
        }
    }

    /// Compact data lives in the layout message itself: exactly elements × size bytes.
    private static func checkCompact(_ m: inout ByteCursor, _ s: HDF5DatasetShape) throws {
        guard let size = m.readInteger(UInt16.self, endianness: .little) else {
            throw ClipSafetyError.malformed("HDF5: the layout of \(s.what) is cut short")
        }
        guard Int(size) <= m.remaining, UInt64(size) == s.bytes else {
            throw ClipSafetyError.malformed("HDF5: compact \(s.what) stores \(size) bytes of data for its \(s.bytes) (its layout message holds \(m.remaining))")
        }
    }

    /// Contiguous data: one block inside the file, exactly elements × size bytes.
    private func checkContiguous(_ m: inout ByteCursor, _ s: HDF5DatasetShape) throws {
        guard let address = geometry.readAddress(&m), let size = geometry.readLength(&m) else {
            throw ClipSafetyError.malformed("HDF5: the layout of \(s.what) is cut short")
        }
        if address == geometry.undefinedAddress {
            guard s.bytes == 0 else { throw Self.noData(s) }
            return
        }
        guard size == s.bytes, geometry.contains(address, length: size) else {
            throw ClipSafetyError.malformed("HDF5: \(s.what) declares \(s.bytes) bytes of data but stores \(size) at address \(address) (the file has \(geometry.fileSize))")
        }
    }

    static func noData(_ s: HDF5DatasetShape) -> ClipSafetyError {
        .malformed("HDF5: \(s.what) stores 0 bytes of data for its \(s.bytes) (its values would all be the fill value)")
    }
}
