import Foundation
import Runtime

/// Reads variable-length string attributes from the bytes of an HDF5 file with ByteCursor,
/// instead of libhdf5.
///
/// Why: libhdf5 up to 1.14.3 copies a global-heap object into a buffer sized by the string's
/// declared length and trusts the object's index without bounds checks (`H5HG_read`), so a
/// crafted attribute crashes or overwrites memory. Keras writes `model_config`, `layer_names`
/// and `weight_names` as such strings, so clipsafety reads them itself: the attribute message
/// in the object header gives, per string, its length and a heap ID (collection address,
/// object index); the collection (`GCOL`) is parsed once with every object checked to lie inside
/// it, and a string is taken only if its object exists and holds at least the declared length.
/// Format: HDF5 File Format Specification 3.0, sections III.A (global heap), IV.A (object
/// headers), IV.A.2.m (attribute message).
struct HDF5VariableStrings {
    let geometry: HDF5Geometry
    let limits: ReaderLimits
    /// Addresses of the object headers HDF5Preflight checked.
    let checkedHeaders: Set<UInt64>
    /// Object headers (by address) that keep their attributes in a fractal heap, which neither
    /// clipsafety nor libhdf5 (see HDF5Group.hasAttribute) is let read.
    let denseAttributeHeaders: Set<UInt64>
    /// Dataset bytes read from this file so far, shared by every group (see HDF5ReadBudget).
    let budget = HDF5ReadBudget()

    var image: Data { geometry.image }

    /// Refuses an object libhdf5 reached that the preflight did not check (they would have
    /// read the file differently).
    func requireChecked(_ header: UInt64, what: String) throws {
        guard checkedHeaders.contains(header) else {
            throw ClipSafetyError.malformed("HDF5: libhdf5 reaches '\(what)' at address \(header), which the preflight did not check")
        }
    }

    /// The strings of attribute `name` of the object whose header starts at `headerAddress`.
    /// `count` is the element count libhdf5 reported for the attribute's dataspace.
    func read(attribute name: String, headerAddress: UInt64, count: Int) throws -> [String] {
        guard let data = try attributeData(named: name, headerAddress: headerAddress) else {
            throw ClipSafetyError.unsupported("HDF5: attribute '\(name)' is kept in dense (fractal heap) storage, which clipsafety does not read")
        }
        var cursor = ByteCursor(data)
        var heaps: [UInt64: [UInt16: (offset: Int, size: Int)]] = [:]
        var strings: [String] = []
        strings.reserveCapacity(count)
        for i in 0..<count {
            guard let length = cursor.readInteger(UInt32.self, endianness: .little),
                  let address = geometry.readAddress(&cursor),
                  let index = cursor.readInteger(UInt32.self, endianness: .little) else {
                throw ClipSafetyError.truncated("HDF5: attribute '\(name)' holds fewer than its \(count) strings")
            }
            if length == 0 { strings.append(""); continue }
            if heaps[address] == nil {
                guard heaps.count < 1024 else {
                    throw ClipSafetyError.limitExceeded("HDF5: attribute '\(name)' spreads over more than 1024 heap collections")
                }
                heaps[address] = try collection(at: address)
            }
            guard index <= UInt32(UInt16.max), let object = heaps[address]?[UInt16(index)] else {
                throw ClipSafetyError.malformed("HDF5: string \(i) of attribute '\(name)' names heap object \(index), which collection \(address) does not hold")
            }
            guard Int(length) <= object.size, let bytes = ByteCursor(image).sliceBytes(at: object.offset, count: Int(length)) else {
                throw ClipSafetyError.malformed("HDF5: string \(i) of attribute '\(name)' declares \(length) bytes; its heap object holds \(object.size)")
            }
            guard let s = String(data: bytes, encoding: .utf8) else {
                throw ClipSafetyError.malformed("HDF5: attribute '\(name)' string \(i) is not valid UTF-8")
            }
            strings.append(s)
        }
        return strings
    }

    // MARK: global heap

    /// The objects of the global heap collection at `address`: index → (image offset, size).
    private func collection(at address: UInt64) throws -> [UInt16: (offset: Int, size: Int)] {
        // The collection's and each object's headers are padded to 8 bytes.
        let headerSize = (8 + geometry.lengthSize + 7) & ~7
        var head = try geometry.cursor(at: address, length: headerSize, what: "global heap collection")
        guard head.readBytes(4) == Data("GCOL".utf8), head.readInteger(UInt8.self, endianness: .little) == 1, head.skip(3),
              let size = geometry.readLength(&head), size >= UInt64(headerSize), size <= UInt64(image.count) else {
            throw ClipSafetyError.malformed("HDF5: no valid global heap collection at address \(address)")
        }
        var c = try geometry.cursor(at: address, length: Int(size), what: "global heap collection")
        _ = c.skip(headerSize)
        var objects: [UInt16: (offset: Int, size: Int)] = [:]
        while c.remaining >= headerSize {
            guard let index = c.readInteger(UInt16.self, endianness: .little), c.skip(6),
                  let objectSize = geometry.readLength(&c), c.skip(headerSize - 8 - geometry.lengthSize) else { break }
            if index == 0 { break }  // free space: the rest of the collection
            guard objectSize <= UInt64(c.remaining) else {
                throw ClipSafetyError.malformed("HDF5: global heap object \(index) at address \(address) runs past its collection")
            }
            let padded = (Int(objectSize) + 7) & ~7
            guard objects[index] == nil else {
                throw ClipSafetyError.malformed("HDF5: global heap collection at address \(address) holds object \(index) twice")
            }
            objects[index] = (c.position, Int(objectSize))
            guard c.skip(Swift.min(padded, c.remaining)) else { break }
        }
        return objects
    }

    // MARK: object headers

    /// The raw data of the attribute message named `name`, or nil when the header keeps its
    /// attributes in dense storage.
    private func attributeData(named name: String, headerAddress: UInt64) throws -> Data? {
        var found: Data?
        try geometry.forEachMessage(headerAddress: headerAddress) { type, flags, body in
            guard type == 0x000C, flags & 0x02 == 0 else { return true }  // shared: not an inline attribute
            found = try Self.attributeBody(body, ifNamed: name)
            return found == nil
        }
        if let found { return found }
        if denseAttributeHeaders.contains(headerAddress) { return nil }
        throw ClipSafetyError.malformed("HDF5: attribute '\(name)' is not in the object header at \(headerAddress)")
    }

    /// The data part of an attribute message whose name is `name` and whose type is a
    /// variable-length string; nil for another attribute.
    private static func attributeBody(_ body: Data, ifNamed name: String) throws -> Data? {
        var m = ByteCursor(body)
        guard let version = m.readInteger(UInt8.self, endianness: .little), let flags = m.readInteger(UInt8.self, endianness: .little),
              let nameSize = m.readInteger(UInt16.self, endianness: .little),
              let typeSize = m.readInteger(UInt16.self, endianness: .little),
              let spaceSize = m.readInteger(UInt16.self, endianness: .little) else {
            throw ClipSafetyError.malformed("HDF5: truncated attribute message")
        }
        func padded(_ n: Int) -> Int { version == 1 ? (n + 7) & ~7 : n }
        switch version {
        case 1, 2: break
        case 3: guard m.skip(1) else { throw ClipSafetyError.malformed("HDF5: truncated attribute message") }
        default: throw ClipSafetyError.unsupported("HDF5: attribute message version \(version)")
        }
        guard let rawName = m.readBytes(padded(Int(nameSize))) else { throw ClipSafetyError.malformed("HDF5: truncated attribute name") }
        let nameBytes = rawName.prefix(Int(nameSize)).prefix { $0 != 0 }
        guard nameBytes.elementsEqual(name.utf8) else { return nil }
        guard version == 1 || flags & 0x03 == 0 else {
            throw ClipSafetyError.unsupported("HDF5: attribute '\(name)' uses a shared datatype or dataspace")
        }
        guard let type = m.readBytes(padded(Int(typeSize))), m.skip(padded(Int(spaceSize))) else {
            throw ClipSafetyError.malformed("HDF5: truncated attribute '\(name)'")
        }
        // Datatype class 9 (variable-length) of type 1 (string).
        guard let classByte = type.first, classByte & 0x0f == 9, type.dropFirst().first.map({ $0 & 0x0f == 1 }) == true else {
            throw ClipSafetyError.malformed("HDF5: attribute '\(name)' is not stored as variable-length strings")
        }
        return m.readBytes(m.remaining) ?? Data()
    }
}

extension ByteCursor {
    /// `count` bytes at absolute `offset` of the underlying data, if inside this cursor's range.
    func sliceBytes(at offset: Int, count: Int) -> Data? {
        var c = self
        guard c.seek(toOffset: offset - start) else { return nil }
        return c.readBytes(count)
    }
}
