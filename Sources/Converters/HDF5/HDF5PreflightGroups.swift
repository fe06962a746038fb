import Foundation
import Runtime

/// Groups with symbol tables (sections III.A.1 version 1 B-trees, III.B symbol table nodes,
/// III.D local heaps): every node, name and heap free-list entry libhdf5 will read is checked.
extension HDF5Preflight {
    /// A symbol table message: the group's B-tree of symbol nodes and its local heap of names.
    mutating func checkSymbolTable(_ body: Data, path: String) throws {
        var m = ByteCursor(body)
        guard let btree = geometry.readAddress(&m), let heap = geometry.readAddress(&m) else {
            throw ClipSafetyError.malformed("HDF5: the symbol table message of group \(Self.describe(path)) is cut short")
        }
        try checkSymbolTable(btree: btree, heap: heap, path: path)
    }

    mutating func checkSymbolTable(btree: UInt64, heap: UInt64, path: String) throws {
        let names = try localHeap(at: heap, path: path)
        try forEachBTreeLeaf(root: btree, type: 0, keySize: geometry.lengthSize, path: path) { walk, _, node in
            try walk.checkSymbolNode(at: node, heap: heap, names: names, path: path)
        }
    }

    /// A local heap's data segment, after checking that it lies inside the file and that its
    /// free list stays inside it and ends (libhdf5 allocates one entry per step of the list, so
    /// a cycle made it grow without end).
    private mutating func localHeap(at address: UInt64, path: String) throws -> ByteCursor {
        let L = geometry.lengthSize
        var h = try geometry.cursor(at: address, length: 8 + 2 * L + geometry.offsetSize, what: "local heap")
        guard h.readBytes(4) == Data("HEAP".utf8), h.readInteger(UInt8.self, endianness: .little) == 0, h.skip(3),
              let size = geometry.readLength(&h), let freeList = geometry.readLength(&h), let dataAddress = geometry.readAddress(&h),
              size <= UInt64(geometry.fileSize), let data = try? geometry.cursor(at: dataAddress, length: Int(size), what: "") else {
            throw ClipSafetyError.malformed("HDF5: the local heap at address \(address) (group \(Self.describe(path))) is not a heap inside the file")
        }
        if try firstVisit(address, as: .localHeap) { try checkFreeList(of: data, head: freeList, heap: address) }
        return data
    }

    /// Walks a local heap's free list: each block inside the data segment, no block twice.
    private func checkFreeList(of data: ByteCursor, head: UInt64, heap: UInt64) throws {
        let L = UInt64(geometry.lengthSize)
        let size = UInt64(data.remaining)
        var block = head
        var visited = Set<UInt64>()
        while block != 1 {  // 1 ends the list (H5HL_FREE_NULL)
            guard block <= size, 2 * L <= size - block else {
                throw ClipSafetyError.malformed("HDF5: the free list of the local heap at address \(heap) points outside the heap")
            }
            guard visited.insert(block).inserted else {
                throw ClipSafetyError.malformed("HDF5: the free list of the local heap at address \(heap) is a cycle")
            }
            var c = data
            _ = c.skip(Int(block))
            guard let next = geometry.readLength(&c), let blockSize = geometry.readLength(&c), blockSize >= 2 * L, blockSize <= size - block else {
                throw ClipSafetyError.malformed("HDF5: a free block of the local heap at address \(heap) runs outside the heap")
            }
            block = next
        }
    }

    /// A symbol table node (`SNOD`): at most 2 × K entries (libhdf5 decodes the declared count
    /// into a buffer of 2 × K), each with a name that ends inside the heap; soft links refused.
    private mutating func checkSymbolNode(at address: UInt64, heap: UInt64, names: ByteCursor, path: String) throws {
        guard try firstVisit(address, as: .symbolNode, context: heap) else { return }
        let entrySize = geometry.lengthSize + geometry.offsetSize + 24
        let capacity = 2 * groupLeafK
        var c = try geometry.cursor(at: address, length: 8 + capacity * entrySize, what: "symbol table node of group \(Self.describe(path))")
        guard c.readBytes(4) == Data("SNOD".utf8), c.readInteger(UInt8.self, endianness: .little) == 1, c.skip(1),
              let count = c.readInteger(UInt16.self, endianness: .little), Int(count) <= capacity else {
            throw ClipSafetyError.malformed("HDF5: bad symbol table node at address \(address) (group \(Self.describe(path)))")
        }
        for _ in 0..<Int(count) {
            guard let nameOffset = geometry.readLength(&c), let header = geometry.readAddress(&c),
                  let cacheType = c.readInteger(UInt32.self, endianness: .little), c.skip(20) else { break }
            let child = Self.join(path, try Self.name(at: nameOffset, in: names, node: address))
            guard cacheType != 2 else {
                try outside(.softLink, path: child, message: "HDF5: \(Self.describe(child)) is a soft link; only hard links are followed")
                continue
            }
            queue(header, path: child)
        }
    }

    /// The NUL-terminated name at `offset` of a local heap's data segment.
    private static func name(at offset: UInt64, in heap: ByteCursor, node: UInt64) throws -> String {
        var c = heap
        guard offset < UInt64(c.remaining), c.skip(Int(offset)), let rest = c.peekBytes(c.remaining), let end = rest.firstIndex(of: 0) else {
            throw ClipSafetyError.malformed("HDF5: a link name of the symbol table node at address \(node) does not end inside its heap")
        }
        return String(decoding: rest[rest.startIndex..<end], as: UTF8.self)
    }

    /// Calls `visit(key, child)` on each entry of the leaves of the version 1 B-tree at `root`
    /// (`type` 0: group nodes, 1: raw data chunks); `key` is the key before the child. Nodes
    /// must lie inside the file, each level one below its parent's, no node twice.
    mutating func forEachBTreeLeaf(root: UInt64, type: UInt8, keySize: Int, path: String,
                                   _ visit: (inout Self, ByteCursor, UInt64) throws -> Void) throws {
        var stack: [(address: UInt64, level: Int?)] = [(root, nil)]
        var visited = Set<UInt64>()
        while let (address, level) = stack.popLast() {
            try countNodeRead()
            guard visited.insert(address).inserted else {
                throw ClipSafetyError.malformed("HDF5: the B-tree of \(Self.describe(path)) reaches the node at address \(address) twice")
            }
            let node = try btreeNode(at: address, type: type, keySize: keySize, path: path)
            guard level == nil || node.level == level! else {
                throw ClipSafetyError.malformed("HDF5: the B-tree node at address \(address) (\(Self.describe(path))) is at the wrong level")
            }
            for (key, child) in node.entries {
                if node.level == 0 { try visit(&self, key, child) } else { stack.append((child, node.level - 1)) }
            }
        }
    }

    /// One version 1 B-tree node: its level and its (key, child) entries.
    private func btreeNode(at address: UInt64, type: UInt8, keySize: Int, path: String) throws -> (level: Int, entries: [(ByteCursor, UInt64)]) {
        let headerSize = 8 + 2 * geometry.offsetSize
        var c = try geometry.cursor(at: address, length: headerSize, what: "B-tree node of \(Self.describe(path))")
        guard c.readBytes(4) == Data("TREE".utf8), c.readInteger(UInt8.self, endianness: .little) == type,
              let level = c.readInteger(UInt8.self, endianness: .little), let count = c.readInteger(UInt16.self, endianness: .little) else {
            throw ClipSafetyError.malformed("HDF5: bad B-tree node at address \(address) (\(Self.describe(path)))")
        }
        let stride = keySize + geometry.offsetSize
        var body = try geometry.cursor(at: address + UInt64(headerSize), length: Int(count) * stride + keySize,
                                       what: "B-tree node of \(Self.describe(path))")
        let entries: [(ByteCursor, UInt64)] = (0..<Int(count)).compactMap { _ in
            guard let key = body.readSlice(keySize), let child = geometry.readAddress(&body) else { return nil }
            return (key, child)
        }
        return (Int(level), entries)
    }
}
