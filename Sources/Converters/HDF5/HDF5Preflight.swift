import Foundation
import Runtime

/// Our own bounds-checked walk of every structure libhdf5 will decode for the objects
/// clipsafety can reach, done on the file's bytes before libhdf5 sees them.
///
/// Why: libhdf5 1.10 is C that trusts many of the sizes and links it reads (measured on hostile
/// files: a Fletcher32 chunk shorter than its checksum crashes it with SIGSEGV, a local heap whose
/// free list is a cycle makes it allocate without end, a declared 1 GiB chunk is allocated as
/// asked). A child process with memory and time limits would also contain those, but costs a
/// fork and a copy of every value per file and does not work inside the library; this walk takes
/// about 4 ms per catalog file in a debug build. What it holds (HDF5 File Format Specification 3.0):
/// the superblock (2-, 4- and 8-byte addresses and lengths), every object header reachable from
/// the root through hard links (continuation loops refused), groups' symbol tables (version 1
/// B-trees, symbol nodes, local heaps with their free lists walked, cycles refused) and link
/// messages (soft and external links, dense link storage refused), attributes (names, plain
/// datatypes, dataspaces no larger than their data), and datasets (see HDF5PreflightDatasets).
struct HDF5Preflight {
    let superblock: HDF5Superblock
    let limits: ReaderLimits
    var geometry: HDF5Geometry { superblock.geometry }
    /// Object headers (by address) whose attributes live in a fractal heap.
    private(set) var denseAttributeHeaders: Set<UInt64> = []
    /// Structures already checked, by kind and address (one address may not be read as two kinds
    /// with only one of them checked).
    private var seen: Set<Visit> = []
    private var pending: [(address: UInt64, path: String)] = []
    /// A group's symbol node holds up to 2 × groupLeafK links.
    private(set) var groupLeafK: Int

    /// B-tree nodes read so far (a node may be read once per tree that reaches it).
    private var nodesRead = 0

    /// Most structures one file may hold (each takes at least 16 bytes of the file) and most
    /// B-tree node reads one walk may do.
    private static let maxObjects = 1 << 16
    private static let maxNodeReads = 1 << 18

    /// Links and storage that point outside the structures walked: soft links (elsewhere in the
    /// file), external links (another file), user-defined links, external raw-data files and
    /// virtual datasets. `check` refuses the first; `survey` (for `scan`) lists them all.
    struct OutsideReference: Sendable, Equatable {
        enum Kind: String, Sendable { case softLink = "soft-link", externalLink = "external-link", userLink = "user-defined-link", externalStorage = "external-storage", virtualDataset = "virtual-dataset" }
        var kind: Kind
        var path: String
        /// What it points to, when the file says (a link's target file and object).
        var target: String
    }

    /// True in `survey`: outside references are listed instead of refused.
    private var recordsOutside = false
    private(set) var outsideReferences: [OutsideReference] = []

    /// Walks the whole file; throws a ClipSafetyError naming the first structure refused.
    static func check(image: Data, limits: ReaderLimits) throws -> HDF5Preflight {
        var p = HDF5Preflight(superblock: try HDF5Superblock(image: image), limits: limits)
        try p.run()
        return p
    }

    /// Walks the whole file like `check`, but lists every outside reference (not followed)
    /// instead of refusing the first; anything else `check` refuses still throws.
    static func survey(image: Data, limits: ReaderLimits) throws -> HDF5Preflight {
        var p = HDF5Preflight(superblock: try HDF5Superblock(image: image), limits: limits)
        p.recordsOutside = true
        try p.run()
        return p
    }

    /// Lists an outside reference in `survey`; in `check`, refuses it with `message`.
    mutating func outside(_ kind: OutsideReference.Kind, path: String, target: String = "", message: String) throws {
        guard recordsOutside else { throw ClipSafetyError.unsafe(message) }
        outsideReferences.append(OutsideReference(kind: kind, path: path, target: target))
    }

    private init(superblock: HDF5Superblock, limits: ReaderLimits) {
        self.superblock = superblock
        self.limits = limits
        self.groupLeafK = superblock.groupLeafK
    }

    private mutating func run() throws {
        if let ext = superblock.extensionHeader { try checkSuperblockExtension(at: ext) }
        pending.append((superblock.rootHeader, "/"))
        try checkPending()
        // Version 0/1 superblocks also cache the root group's symbol table.
        if let cached = superblock.rootSymbolTable {
            try checkSymbolTable(btree: cached.btree, heap: cached.heap, path: "/")
            try checkPending()
        }
    }

    /// Checks every queued object header not checked yet, and what they link to.
    private mutating func checkPending() throws {
        while let (address, path) = pending.popLast() {
            if try firstVisit(address, as: .objectHeader) { try checkObject(at: address, path: path) }
        }
    }

    /// The superblock extension (versions 2 and 3): shared-message tables are refused (they
    /// move messages into a fractal heap), a B-tree K message sets the group leaf size.
    private mutating func checkSuperblockExtension(at address: UInt64) throws {
        var leafK: Int?
        try geometry.forEachMessage(headerAddress: address) { type, _, body in
            switch type {
            case 0x000F: throw ClipSafetyError.unsupported("HDF5: shared object-header messages (a superblock extension's message table) are not read")
            case 0x0013:
                var m = ByteCursor(body)
                guard m.skip(5), let k = m.readInteger(UInt16.self, endianness: .little), k > 0 else {  // version, two other K values
                    throw ClipSafetyError.malformed("HDF5: bad B-tree K message in the superblock extension")
                }
                leafK = Int(k)
            default: break
            }
            return true
        }
        if let leafK { groupLeafK = leafK }
    }

    /// What one object header says about a dataset, gathered message by message.
    struct DatasetMessages {
        var space: HDF5Dataspace?
        var type: HDF5Datatype?
        var layout: Data?
        var filters: [UInt16]?
        var fillValues: [(type: Int, body: Data)] = []
        /// An external-storage message was listed (`survey`): the data is not in the file.
        var external = false
    }

    /// Checks every message of one object header, queues its links, then checks it as a dataset.
    private mutating func checkObject(at address: UInt64, path: String) throws {
        var dataset = DatasetMessages()
        var messages: [(Int, UInt8, Data)] = []
        try geometry.forEachMessage(headerAddress: address) { type, flags, body in
            messages.append((type, flags, body))
            return true
        }
        for (type, flags, body) in messages {
            try checkMessage(type: type, flags: flags, body: body, header: address, path: path, dataset: &dataset)
        }
        if dataset.layout != nil, !dataset.external { try checkDataset(dataset, path: path) }
    }

    private mutating func checkMessage(type: Int, flags: UInt8, body: Data, header: UInt64, path: String,
                                       dataset: inout DatasetMessages) throws {
        if flags & 0x02 != 0, [0x0001, 0x0003, 0x0004, 0x0005, 0x0008, 0x000B, 0x000C].contains(type) {
            throw ClipSafetyError.unsupported("HDF5: \(Self.describe(path)) uses a shared message (committed datatype or shared table), which is not read")
        }
        switch type {
        case 0x0001: dataset.space = try HDF5Dataspace(body, geometry: geometry, what: Self.describe(path))
        case 0x0003: dataset.type = try HDF5Datatype(body, geometry: geometry, what: Self.describe(path))
        case 0x0004, 0x0005: dataset.fillValues.append((type, body))
        case 0x0008: dataset.layout = body
        case 0x000B: dataset.filters = try HDF5Filter.pipeline(body, what: "dataset \(Self.describe(path))")
        case 0x0007:
            try outside(.externalStorage, path: path, message: "HDF5: \(Self.describe(path)) keeps its data in external files; refused")
            dataset.external = true
        case 0x000C: try checkAttribute(body, header: header, path: path)
        case 0x000D: try Self.checkComment(body, path: path)
        case 0x0002: try checkLinkInfo(body, path: path)
        case 0x0006: try queueLink(body, path: path)
        case 0x0011: try checkSymbolTable(body, path: path)
        case 0x0015: if try geometry.hasDenseAttributes(headerAddress: header) { denseAttributeHeaders.insert(header) }
        default: break
        }
    }

    /// libhdf5 strdup()s an object's comment: it must end inside its message.
    private static func checkComment(_ body: Data, path: String) throws {
        guard body.contains(0) else {
            throw ClipSafetyError.malformed("HDF5: the comment of \(describe(path)) does not end inside its message")
        }
    }

    /// `path` for messages, with control characters the file put in names made visible.
    static func describe(_ path: String) -> String {
        "'" + String(path.unicodeScalars.map { $0.properties.generalCategory == .control || $0 == "\u{2028}" || $0 == "\u{2029}" ? "?" : Character($0) }) + "'"
    }

    /// `child` of `path`.
    static func join(_ path: String, _ child: String) -> String {
        path == "/" ? "/" + child : path + "/" + child
    }

    /// The kinds of structure checked once per file.
    enum Kind { case objectHeader, symbolNode, localHeap }

    /// A structure's kind, its address and what its check depends on (a symbol node's heap).
    struct Visit: Hashable {
        var kind: Kind
        var address: UInt64
        var context: UInt64
    }

    /// Marks a structure as checked; false when it already was. Bounds the walk's work.
    mutating func firstVisit(_ address: UInt64, as kind: Kind, context: UInt64 = 0) throws -> Bool {
        guard seen.insert(Visit(kind: kind, address: address, context: context)).inserted else { return false }
        guard seen.count <= Self.maxObjects else {
            throw ClipSafetyError.limitExceeded("HDF5: the file holds more than \(Self.maxObjects) objects and structures")
        }
        return true
    }

    /// Counts one B-tree node read against the walk's budget.
    mutating func countNodeRead() throws {
        nodesRead += 1
        guard nodesRead <= Self.maxNodeReads else {
            throw ClipSafetyError.limitExceeded("HDF5: the file's B-trees take more than \(Self.maxNodeReads) node reads to check")
        }
    }

    /// Queues a hard link's target for checking.
    mutating func queue(_ address: UInt64, path: String) {
        pending.append((address, path))
    }

    /// Addresses of every object header checked.
    var objectHeaders: Set<UInt64> { Set(seen.filter { $0.kind == .objectHeader }.map(\.address)) }
}
