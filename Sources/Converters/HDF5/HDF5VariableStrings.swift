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
    let image: Data
    /// Absolute offset that file addresses are relative to (the user block size).
    let base: Int
    /// Bytes of a file address and of a length (both 8 in every file Keras and h5py write).
    let offsetSize: Int
    let lengthSize: Int
    let limits: ReaderLimits
    /// Dataset bytes read from this file so far, shared by every group (see HDF5ReadBudget).
    let budget = HDF5ReadBudget()

    private static let maxContinuations = 64

    /// The address of the root group's object header, from a version 0–3 superblock at the start
    /// of the image with 8-byte addresses and lengths; nil for any other layout (libhdf5 then
    /// reads it unchecked).
    func rootObjectHeaderAddress() -> UInt64? {
        let c = ByteCursor(image)
        guard base == 0, let version = c.peekInteger(UInt8.self, endianness: .little, skip: 8) else { return nil }
        let at: Int
        switch version {
        case 0, 1:
            guard c.peekInteger(UInt16.self, endianness: .little, skip: 13) == 0x0808 else { return nil }
            at = version == 0 ? 64 : 68
        case 2, 3:
            guard c.peekInteger(UInt16.self, endianness: .little, skip: 9) == 0x0808 else { return nil }
            at = 36
        default:
            return nil
        }
        return c.peekInteger(UInt64.self, endianness: .little, skip: at)
    }

    /// The strings of attribute `name` of the object whose header starts at `headerAddress`.
    /// `count` is the element count libhdf5 reported for the attribute's dataspace.
    func read(attribute name: String, headerAddress: UInt64, count: Int) throws -> [String] {
        guard offsetSize == 8, lengthSize == 8 else {
            throw ClipSafetyError.unsupported("HDF5: variable-length strings in a file with \(offsetSize)-byte addresses and \(lengthSize)-byte lengths")
        }
        guard let data = try attributeData(named: name, headerAddress: headerAddress) else {
            throw ClipSafetyError.unsupported("HDF5: attribute '\(name)' is kept in dense (fractal heap) storage, which clipsafety does not read")
        }
        var cursor = ByteCursor(data)
        var heaps: [UInt64: [UInt16: (offset: Int, size: Int)]] = [:]
        var strings: [String] = []
        strings.reserveCapacity(count)
        for i in 0..<count {
            guard let length = cursor.readInteger(UInt32.self, endianness: .little),
                  let address = cursor.readInteger(UInt64.self, endianness: .little),
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

    /// Absolute image offset of a file address, if the address lies inside the image.
    private func offset(of address: UInt64) -> Int? {
        guard address < UInt64(Int.max), Int(address) <= image.count - base else { return nil }
        return base + Int(address)
    }

    /// A cursor over `length` bytes at file address `address`.
    private func cursor(at address: UInt64, length: Int, what: String) throws -> ByteCursor {
        var c = ByteCursor(image)
        guard let start = offset(of: address), c.seek(toOffset: start), let slice = c.readSlice(length) else {
            throw ClipSafetyError.malformed("HDF5: \(what) at address \(address) lies outside the file")
        }
        return slice
    }

    // MARK: global heap

    /// The objects of the global heap collection at `address`: index → (image offset, size).
    private func collection(at address: UInt64) throws -> [UInt16: (offset: Int, size: Int)] {
        var head = try cursor(at: address, length: 16, what: "global heap collection")
        guard head.readBytes(4) == Data("GCOL".utf8), head.readInteger(UInt8.self, endianness: .little) == 1, head.skip(3),
              let size = head.readInteger(UInt64.self, endianness: .little), size >= 16, size <= UInt64(image.count) else {
            throw ClipSafetyError.malformed("HDF5: no valid global heap collection at address \(address)")
        }
        var c = try cursor(at: address, length: Int(size), what: "global heap collection")
        _ = c.skip(16)
        var objects: [UInt16: (offset: Int, size: Int)] = [:]
        while c.remaining >= 16 {
            guard let index = c.readInteger(UInt16.self, endianness: .little), c.skip(6),
                  let objectSize = c.readInteger(UInt64.self, endianness: .little) else { break }
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
        let dense = try forEachMessage(headerAddress: headerAddress) { type, flags, body in
            guard type == 0x000C, flags & 0x02 == 0 else { return true }  // shared: not an inline attribute
            found = try Self.attributeBody(body, ifNamed: name)
            return found == nil
        }
        if let found { return found }
        if dense { return nil }
        throw ClipSafetyError.malformed("HDF5: attribute '\(name)' is not in the object header at \(headerAddress)")
    }

    /// Checks the object header at `headerAddress` before libhdf5 decodes it: the header and
    /// its continuation blocks must lie inside the file (libhdf5 allocates a header's declared
    /// size before comparing it with the end of the file; fuzz-any made it allocate 4 GiB), and
    /// every inline attribute message must hold a NUL-terminated name and parts that fit in the
    /// message (libhdf5 1.10 strdup()s the name, reading past the header's buffer when the NUL
    /// is missing; found by fuzz-hdf5).
    func checkObjectHeader(at headerAddress: UInt64) throws {
        _ = try forEachMessage(headerAddress: headerAddress) { type, flags, body in
            switch type {
            case 0x000C where flags & 0x02 == 0:
                try Self.checkAttributeMessage(body, headerAddress: headerAddress)
            case 0x0011:
                try checkSymbolTableHeap(body, headerAddress: headerAddress)
            default:
                break
            }
            return true
        }
    }

    /// A group's symbol table message names a local heap of link names; libhdf5 allocates the
    /// heap's declared data size before comparing it with the end of the file (fuzz-any made
    /// it allocate 4 GiB). The heap header and its data segment must lie inside the file.
    private func checkSymbolTableHeap(_ body: Data, headerAddress: UInt64) throws {
        var m = ByteCursor(body)
        guard m.skip(8), let heapAddress = m.readInteger(UInt64.self, endianness: .little) else {
            throw ClipSafetyError.malformed("HDF5: the symbol table message of the object header at \(headerAddress) is cut short")
        }
        var heap = try cursor(at: heapAddress, length: 32, what: "local heap")
        guard heap.readBytes(4) == Data("HEAP".utf8), heap.readInteger(UInt8.self, endianness: .little) == 0, heap.skip(3),
              let size = heap.readInteger(UInt64.self, endianness: .little), heap.skip(8),
              let dataAddress = heap.readInteger(UInt64.self, endianness: .little),
              size <= UInt64(image.count), (try? cursor(at: dataAddress, length: Int(size), what: "")) != nil else {
            throw ClipSafetyError.malformed("HDF5: the local heap at address \(heapAddress) (group header at \(headerAddress)) is not a heap inside the file")
        }
    }

    private static func checkAttributeMessage(_ body: Data, headerAddress: UInt64) throws {
        var m = ByteCursor(body)
        func bad(_ what: String) -> ClipSafetyError {
            .malformed("HDF5: an attribute message in the object header at \(headerAddress) \(what)")
        }
        guard let version = m.readInteger(UInt8.self, endianness: .little), m.skip(1),
              let nameSize = m.readInteger(UInt16.self, endianness: .little),
              let typeSize = m.readInteger(UInt16.self, endianness: .little),
              let spaceSize = m.readInteger(UInt16.self, endianness: .little) else { throw bad("is cut short") }
        func padded(_ n: Int) -> Int { version == 1 ? (n + 7) & ~7 : n }
        switch version {
        case 1, 2: break
        case 3: guard m.skip(1) else { throw bad("is cut short") }
        default: throw ClipSafetyError.unsupported("HDF5: attribute message version \(version) in the object header at \(headerAddress)")
        }
        guard nameSize > 0, let name = m.peekBytes(Int(nameSize)), name.contains(0) else {
            throw bad("has a name that does not end inside it")
        }
        guard m.skip(padded(Int(nameSize))), m.skip(padded(Int(typeSize))), m.skip(padded(Int(spaceSize))) else {
            throw bad("declares a name, type and shape larger than the message")
        }
    }

    /// One block of object-header messages: the header's first chunk or a continuation.
    private struct HeaderBlock {
        var cursor: ByteCursor
        var version: Int
        /// Version 2 headers that track creation order add two bytes to each message prefix.
        var creationOrder: Bool
    }

    /// Calls `visit(type, flags, body)` on every message of the object header at
    /// `headerAddress` (version 1 or 2, following continuation blocks) until it returns false.
    /// Returns true when the header keeps its attributes in dense storage.
    private func forEachMessage(headerAddress: UInt64, _ visit: (Int, UInt8, Data) throws -> Bool) throws -> Bool {
        var blocks = [try firstBlock(ofHeaderAt: headerAddress)]
        var visited = Set<UInt64>([headerAddress])
        var denseStorage = false
        var b = 0
        while b < blocks.count {
            var block = blocks[b]
            b += 1
            while let (type, flags, body) = try nextMessage(in: &block, headerAddress: headerAddress) {
                switch type {
                case 0x0010:  // continuation
                    blocks.append(try continuation(body, of: block, headerAddress: headerAddress, visited: &visited))
                case 0x0015:  // attribute info: dense storage when its fractal heap address is defined
                    var m = ByteCursor(body)
                    _ = m.skip(1)
                    let f = m.readInteger(UInt8.self, endianness: .little) ?? 0
                    if f & 0x01 != 0 { _ = m.skip(2) }
                    if let heap = m.readInteger(UInt64.self, endianness: .little), heap != UInt64.max { denseStorage = true }
                default:
                    guard try visit(type, flags, body) else { return denseStorage }
                }
            }
        }
        return denseStorage
    }

    /// The first message block of the header at `headerAddress`, after its version 1 or 2 prefix.
    private func firstBlock(ofHeaderAt headerAddress: UInt64) throws -> HeaderBlock {
        var prefix = try cursor(at: headerAddress, length: 16, what: "object header")
        guard prefix.peekBytes(4) == Data("OHDR".utf8) else {
            guard prefix.readInteger(UInt8.self, endianness: .little) == 1, prefix.skip(7),
                  let size = prefix.readInteger(UInt32.self, endianness: .little) else {
                throw ClipSafetyError.malformed("HDF5: object header at \(headerAddress) has an unknown version")
            }
            return HeaderBlock(cursor: try cursor(at: headerAddress + 16, length: Int(size), what: "object header"), version: 1, creationOrder: false)
        }
        _ = prefix.skip(4)
        guard prefix.readInteger(UInt8.self, endianness: .little) == 2, let flags = prefix.readInteger(UInt8.self, endianness: .little) else {
            throw ClipSafetyError.malformed("HDF5: object header at \(headerAddress) has an unknown version")
        }
        var skip = 6
        if flags & 0x20 != 0 { skip += 16 }
        if flags & 0x10 != 0 { skip += 4 }
        let sizeWidth = [1, 2, 4, 8][Int(flags & 0x03)]
        var c = try cursor(at: headerAddress, length: skip + sizeWidth, what: "object header")
        _ = c.skip(skip)
        var chunkSize: UInt64 = 0
        for i in 0..<sizeWidth {
            guard let byte = c.readInteger(UInt8.self, endianness: .little) else { break }
            chunkSize |= UInt64(byte) << (8 * UInt64(i))
        }
        guard chunkSize <= UInt64(image.count) else { throw ClipSafetyError.malformed("HDF5: object header at \(headerAddress) is larger than the file") }
        return HeaderBlock(cursor: try cursor(at: headerAddress + UInt64(skip + sizeWidth), length: Int(chunkSize), what: "object header"),
                           version: 2, creationOrder: flags & 0x04 != 0)
    }

    /// The next message of `block` as (type, flags, body), or nil where the block ends (or
    /// only gap bytes remain).
    private func nextMessage(in block: inout HeaderBlock, headerAddress: UInt64) throws -> (Int, UInt8, Data)? {
        var c = block.cursor
        defer { block.cursor = c }
        let type: Int, size: Int, flags: UInt8
        if block.version == 1 {
            guard c.remaining >= 8, let t = c.readInteger(UInt16.self, endianness: .little),
                  let s = c.readInteger(UInt16.self, endianness: .little),
                  let f = c.readInteger(UInt8.self, endianness: .little), c.skip(3) else { return nil }
            (type, size, flags) = (Int(t), Int(s), f)
        } else {
            guard c.remaining >= 4 + 4, let t = c.readInteger(UInt8.self, endianness: .little),
                  let s = c.readInteger(UInt16.self, endianness: .little),
                  let f = c.readInteger(UInt8.self, endianness: .little) else { return nil }
            if block.creationOrder { guard c.skip(2) else { return nil } }
            (type, size, flags) = (Int(t), Int(s), f)
        }
        guard let body = c.readBytes(size) else {
            throw ClipSafetyError.malformed("HDF5: a message of the object header at \(headerAddress) runs past its block")
        }
        return (type, flags, body)
    }

    /// The block a continuation message points to; refuses loops and too many continuations.
    private func continuation(_ body: Data, of block: HeaderBlock, headerAddress: UInt64, visited: inout Set<UInt64>) throws -> HeaderBlock {
        var m = ByteCursor(body)
        guard let address = m.readInteger(UInt64.self, endianness: .little),
              let length = m.readInteger(UInt64.self, endianness: .little), length <= UInt64(image.count) else {
            throw ClipSafetyError.malformed("HDF5: bad continuation in the object header at \(headerAddress)")
        }
        guard visited.insert(address).inserted, visited.count <= Self.maxContinuations else {
            throw ClipSafetyError.malformed("HDF5: the object header at \(headerAddress) loops or has too many continuations")
        }
        var next = try cursor(at: address, length: Int(length), what: "object header continuation")
        if block.version == 2 {
            guard next.readBytes(4) == Data("OCHK".utf8), let inner = next.readSlice(Swift.max(next.remaining - 4, 0)) else {
                throw ClipSafetyError.malformed("HDF5: bad continuation block at address \(address)")
            }
            next = inner
        }
        return HeaderBlock(cursor: next, version: block.version, creationOrder: block.creationOrder)
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
