import CHDF5
@testable import Converters
import Foundation
import Runtime
import TestSupport
import XCTest

/// HDF5 files libhdf5 1.10 mishandles, each built here (by libhdf5, then broken by hand where
/// needed) and refused by HDF5Preflight before libhdf5 sees the bytes; and the valid variants
/// (other address widths, compact and chunked layouts, filters) that must still convert.
final class HDF5PreflightTests: XCTestCase {
    private let layers = [TestLayer.normalization("n", width: 4), .dense("d", inputs: 4, units: 3, activation: "relu"),
                          .dense("out", inputs: 3, units: 1, activation: "sigmoid")]
    private let kernel = "/model_weights/d/d/kernel"

    private func convert(_ bytes: Data, name: String = "m.h5") throws -> NativeModel {
        try convertModel(bytes: bytes, options: ConversionOptions(fileName: name))
    }

    private func scores(_ bytes: Data, name: String = "m.h5") throws -> [Float] {
        try KerasTestSupport.score(try convert(bytes, name: name), x: KerasFixture.rows(5, width: 4), rows: 5)
    }

    /// Refused with `kind`, a one-line message holding `parts`, within 5 s.
    private func assertRefused(_ bytes: Data, name: String = "m.h5", _ kind: ClipSafetyError.Kind, _ parts: [String],
                               file: StaticString = #filePath, line: UInt = #line) {
        let start = Date()
        KerasTestSupport.assertThrows(kind, containing: parts, file: file, line: line) { try self.convert(bytes, name: name) }
        XCTAssertLessThan(Date().timeIntervalSince(start), 5, file: file, line: line)
    }

    /// The legacy `.h5` of `layers` with `kernel` rewritten as `storage` says.
    private func h5(offsetSize: Int = 8, lengthSize: Int = 8, latest: Bool = false, storage: HDF5TestWriter.Storage? = nil,
                    edit: (HDF5TestWriter) throws -> Void = { _ in }) throws -> Data {
        try KerasFixture.legacyH5(layers, width: 4, latestFormat: latest, offsetSize: offsetSize, lengthSize: lengthSize) { w in
            if let storage {
                try w.delete(kernel)
                try w.floats(kernel, shape: [4, 3], layers[1].weights[0].values, storage: storage)
            }
            try edit(w)
        }
    }

    // MARK: - Valid files

    func testFilesWithNarrowAddressesAndLengthsConvertToTheSameScores() throws {
        let wide = try scores(try h5())
        for (offsets, lengths) in [(4, 4), (4, 8), (8, 4), (2, 4)] {
            XCTAssertEqual(try scores(try h5(offsetSize: offsets, lengthSize: lengths)), wide, "\(offsets)-byte addresses, \(lengths)-byte lengths")
        }
        let config = KerasFixture.config(layers, width: 4)
        let keras4 = try KerasFixture.kerasArchive(config: config, weights: try KerasFixture.weightsH5(layers, offsetSize: 4))
        XCTAssertEqual(try scores(keras4, name: "m.keras"), wide)
    }

    func testCompactAndChunkedKernelsWithEveryAllowedFilterConvert() throws {
        let plain = try scores(try h5())
        let storages = [HDF5TestWriter.Storage(compact: true), .init(chunks: [2, 3]), .init(chunks: [4, 3], fletcher32: true),
                        .init(chunks: [3, 2], shuffle: true, deflate: true, fletcher32: true)]
        for storage in storages {
            XCTAssertEqual(try scores(try h5(storage: storage)), plain, "\(storage)")
        }
    }

    func testNewestFormatChunksWithSingleOrImplicitIndexesConvert() throws {
        let plain = try scores(try h5())
        let storages = [HDF5TestWriter.Storage(chunks: [4, 3]), .init(chunks: [4, 3], shuffle: true, deflate: true, fletcher32: true),
                        .init(chunks: [2, 3], earlyAllocation: true)]
        for storage in storages {
            XCTAssertEqual(try scores(try h5(latest: true, storage: storage)), plain, "\(storage)")
        }
        // Several filtered chunks get a fixed-array index, which the preflight does not read.
        assertRefused(try h5(latest: true, storage: .init(chunks: [2, 3], deflate: true)), .unsupported, ["kernel", "fixed array"])
    }

    // MARK: - Filters and chunks

    /// The first chunk B-tree node's first key: its chunk size is set to `size`.
    private func settingFirstChunkSize(_ bytes: Data, to size: UInt32, offsetSize: Int = 8) throws -> Data {
        var b = bytes
        let node = try XCTUnwrap(Self.offsets(of: Data("TREE".utf8), in: b).first { b[$0 + 4] == 1 }, "no chunk B-tree")
        Self.put(size, in: &b, at: node + 8 + 2 * offsetSize)
        return b
    }

    func testRefusesAFletcher32ChunkShorterThanItsChecksum() throws {
        // libhdf5 1.10 subtracts the 4 checksum bytes from the chunk's size unchecked: SIGSEGV.
        let good = try h5(storage: .init(chunks: [4, 3], fletcher32: true))
        XCTAssertNoThrow(try convert(good))
        for size: UInt32 in [0, 2, 3] {
            assertRefused(try settingFirstChunkSize(good, to: size), .malformed, ["kernel", size == 0 ? "outside the file" : "Fletcher32"])
        }
        let deflated = try h5(storage: .init(chunks: [2, 3], shuffle: true, deflate: true, fletcher32: true))
        assertRefused(try settingFirstChunkSize(deflated, to: 3), .malformed, ["kernel", "fewer than its 4-byte Fletcher32 checksum"])
        // The same in a `.keras` archive's weights.
        let weights = try KerasFixture.weightsH5(layers) { w in
            try w.delete("/layers/dense/vars/0")
            try w.floats("/layers/dense/vars/0", shape: [4, 3], self.layers[1].weights[0].values, storage: .init(chunks: [4, 3], fletcher32: true))
        }
        let archive = { (weights: Data) in try KerasFixture.kerasArchive(config: KerasFixture.config(self.layers, width: 4), weights: weights) }
        XCTAssertNoThrow(try convert(try archive(weights), name: "m.keras"))
        assertRefused(try archive(try settingFirstChunkSize(weights, to: 2)), name: "m.keras", .malformed, ["Fletcher32"])
    }

    func testRefusesChunksDeclaredLargerThanTheLimitsOrTheFile() throws {
        // A 1 GiB chunk for 12 floats: libhdf5 allocates the declared chunk to read it.
        let huge = try h5 { w in
            try w.floats("/big", shape: [1], [1], storage: .init(chunks: [1 << 28], unlimited: true, leaveUnwritten: true))
        }
        assertRefused(huge, .limitExceeded, ["'/big'", "chunks of 1073741824 bytes", "over the 67108864", "--max-uncompressed-bytes"])
        // Under the limit but larger than both the dataset and the file.
        let large = try h5 { w in
            try w.floats("/big", shape: [1], [1], storage: .init(chunks: [1 << 22], unlimited: true, leaveUnwritten: true))
        }
        assertRefused(large, .malformed, ["'/big'", "larger than both"])
        // An unfiltered chunk that stores fewer bytes than a chunk holds.
        assertRefused(try settingFirstChunkSize(try h5(storage: .init(chunks: [2, 3])), to: 8), .malformed, ["kernel", "stores 8 bytes, not its 24"])
    }

    func testRefusesUnknownFilters() throws {
        // The pipeline message names each filter: the Fletcher32 filter's ID (8 bytes before its
        // name) becomes 32000, a filter this libhdf5 would have to find as a plugin.
        var bytes = try h5(storage: .init(chunks: [4, 3], fletcher32: true))
        let name = try XCTUnwrap(Self.offsets(of: Data("fletcher32".utf8), in: bytes).first)
        XCTAssertEqual(bytes[name - 8], 3)
        bytes[name - 8] = 0x00; bytes[name - 7] = 0x7d
        assertRefused(bytes, .unsupported, ["dataset '/model_weights/d/d/kernel'", "mandatory filter 32000", "only deflate, shuffle and Fletcher32"])
    }

    // MARK: - Layouts and fill values

    func testRefusesCompactDataSmallerThanItsDataset() throws {
        // A version 3 compact layout: 3, 0, a 2-byte size, then the kernel's 48 bytes of data.
        var bytes = try h5(storage: .init(compact: true))
        let values = layers[1].weights[0].values.map { Float($0) }
        let at = try XCTUnwrap(Self.offsets(of: Data([3, 0, 48, 0]) + values.withUnsafeBytes { Data($0) }, in: bytes).first)
        bytes[at + 2] = 40
        assertRefused(bytes, .malformed, ["compact", "kernel", "stores 40 bytes of data for its 48"])
    }

    func testRefusesDatasetsThatStoreNothingButAFillValue() throws {
        for storage in [HDF5TestWriter.Storage(fill: 0.5, leaveUnwritten: true), .init(chunks: [2, 3], fill: 0.5, leaveUnwritten: true)] {
            assertRefused(try h5(storage: storage), .malformed, ["kernel", "stores 0 bytes", "fill value"])
        }
    }

    // MARK: - Groups, heaps and links

    func testRefusesALocalHeapWhoseFreeListIsACycle() throws {
        // libhdf5 allocates one entry per free block it follows: a cycle grew it to 10–12 GB.
        var bytes = try h5()
        let heap = try XCTUnwrap(Self.offsets(of: Data("HEAP".utf8), in: bytes).first { Self.le(bytes, at: $0 + 16) != 1 }, "no heap with free space")
        let free = Int(Self.le(bytes, at: heap + 16)), data = Int(Self.le(bytes, at: heap + 24))
        Self.put(UInt64(free), in: &bytes, at: data + free)  // the free block's "next" is itself
        assertRefused(bytes, .malformed, ["local heap at address \(heap)", "cycle"])
    }

    func testRefusesSymbolNodesThatOverflowOrNameOutsideTheirHeap() throws {
        // Legacy files' symbol nodes hold at most 2 × 4 links; libhdf5 1.10 decodes the declared
        // count into a buffer of that size. Node: "SNOD", version, reserved, 2-byte count, entries
        // (8-byte name offset into the group's local heap first).
        let good = try h5()
        let node = try XCTUnwrap(Self.offsets(of: Data("SNOD".utf8), in: good).first)
        var overflow = good
        Self.put(UInt16(9), in: &overflow, at: node + 6)
        assertRefused(overflow, .malformed, ["bad symbol table node at address \(node)"])
        var outside = good
        Self.put(UInt64(0xFFFF), in: &outside, at: node + 8)
        assertRefused(outside, .malformed, ["link name", "does not end inside its heap"])
    }

    func testRefusesAnObjectHeaderWhoseContinuationLoops() throws {
        // Thirty attributes overflow the root group's first header block (version 1, at the
        // address in the superblock's root entry, byte 64): libhdf5 adds a continuation
        // message (type 0x10, 16 bytes: address, length). Aimed back at the block holding it,
        // it loops.
        var bytes = try h5 { w in for i in 0..<30 { try w.strings("extra_\(i)", on: "/", [String(repeating: "x", count: 40)], scalar: true) } }
        let root = Int(Self.le(bytes, at: 64)), size = Int(Self.le(bytes, at: root + 8) & 0xFFFF_FFFF)
        let block = root + 16
        let message = try XCTUnwrap(Self.offsets(of: Data([0x10, 0, 0x10, 0]), in: bytes).first { $0 >= block && $0 < block + size })
        Self.put(UInt64(block), in: &bytes, at: message + 8)
        Self.put(UInt64(size), in: &bytes, at: message + 16)
        assertRefused(bytes, .malformed, ["object header at \(root)", "loops"])
    }

    func testRefusesSoftLinkLoopsAndExternalLinksAnywhere() throws {
        let loop = try h5 { w in
            try w.softLink(to: "/b", at: "/a")
            try w.softLink(to: "/a", at: "/b")
        }
        assertRefused(loop, .unsafe, ["soft link", "only hard links"])
        let external = try h5 { w in try w.externalLink(file: "/etc/passwd", object: "/x", at: "/model_weights/elsewhere") }
        assertRefused(external, .unsafe, ["'/model_weights/elsewhere'", "external link"])
    }

    func testRefusesVirtualDatasets() throws {
        let bytes = try h5 { w in try w.virtualFloats("/v", shape: [4], file: "/etc/passwd", source: "/x") }
        assertRefused(bytes, .unsafe, ["'/v'", "virtual dataset"])
    }

    func testRefusesAnAttributeWhoseDataspaceIsLargerThanItsData() throws {
        // libhdf5 copies elements × size bytes from the message. Version 1 attribute message:
        // 8-byte prefix, name, datatype and dataspace each padded to 8; the dataspace's first
        // dimension is 8 bytes into it.
        var bytes = try h5 { w in try w.strings("bigattr", on: "/", ["ab", "cd"], fixedLength: true) }
        let name = try XCTUnwrap(Self.offsets(of: Data("bigattr\0".utf8), in: bytes).first)
        let typeSize = Int(bytes[name - 4]) | Int(bytes[name - 3]) << 8
        let dim = name + 8 + (typeSize + 7) & ~7 + 8
        XCTAssertEqual(Self.le(bytes, at: dim), 2)
        Self.put(UInt64(1000), in: &bytes, at: dim)
        assertRefused(bytes, .malformed, ["attribute of '/'", "1000 elements of 2 bytes"])
    }

    func testRefusesDatatypesWhosePropertiesLibHDF5DecodesUnchecked() throws {
        // The attribute's datatype (class 3, fixed string, version 1: byte 0x13) becomes a
        // compound (class 6), whose member names libhdf5 1.10 strdup()s.
        var bytes = try h5 { w in try w.strings("oddtype", on: "/", ["ab"], fixedLength: true) }
        let type = try XCTUnwrap(Self.offsets(of: Data("oddtype\0".utf8), in: bytes).first) + 8
        XCTAssertEqual(bytes[type], 0x13)
        bytes[type] = 0x16
        assertRefused(bytes, .unsupported, ["attribute of '/'", "class compound"])
    }

    // MARK: - Byte helpers

    static func offsets(of needle: Data, in data: Data) -> [Int] {
        var found: [Int] = []
        var from = data.startIndex
        while let r = data.range(of: needle, in: from..<data.endIndex) {
            found.append(r.lowerBound)
            from = r.lowerBound + 1
        }
        return found
    }

    static func le(_ data: Data, at offset: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(data[offset + $1]) << (8 * UInt64($1)) }
    }

    static func put<T: FixedWidthInteger>(_ value: T, in data: inout Data, at offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { data.replaceSubrange(offset..<(offset + $0.count), with: $0) }
    }
}

/// Two HDF5 images open at once are two files: libhdf5 keys open files by name, so each image
/// gets its own (once both were opened under one name and the second read the first's bytes).
final class HDF5ImagesOpenTogetherTests: XCTestCase {
    func image(_ value: Double) throws -> Data {
        let w = try HDF5TestWriter()
        try w.floats("w", shape: [2], [value, value])
        return try w.finish()
    }

    func testTwoOpenImagesReadTheirOwnValues() throws {
        let first = try HDF5File(image: try image(1), limits: ReaderLimits())
        let second = try HDF5File(image: try image(2), limits: ReaderLimits())
        XCTAssertEqual(try first.root.floatDataset("w").values, [1, 1])
        XCTAssertEqual(try second.root.floatDataset("w").values, [2, 2])
        XCTAssertEqual(try first.root.floatDataset("w").values, [1, 1])
    }
}
