import CHDF5
import Foundation
import Runtime

/// The objects of an HDF5 file as its headers declare them, for `inspect`: groups, datasets
/// (type, shape, chunking, filters), links and attributes. Only hard links are followed; an
/// object reached twice (a hard link back up the tree) is listed once; no dataset's data is read.
extension HDF5Group {
    /// Most objects listed; a file with more is cut, saying so.
    static let maxObjects = 10_000
    /// Attribute values shown up to this many elements.
    static let maxAttributeValues = 16

    /// Names of this group's members, in name order.
    func memberNames() throws -> [String] {
        let count = try memberCount()
        guard count <= Self.maxObjects else {
            throw ClipSafetyError.limitExceeded("HDF5: group \(path) has \(count) members, above \(Self.maxObjects)")
        }
        return try (0..<count).map { i in
            let length = clipsafety_h5_member_name(handle.id, UInt64(i), nil, 0)
            guard length >= 0, length < 1 << 16 else { throw HDF5Failure.error("cannot read member \(i) of \(path)") }
            var buffer = [CChar](repeating: 0, count: length + 1)
            guard clipsafety_h5_member_name(handle.id, UInt64(i), &buffer, buffer.count) == length else {
                throw HDF5Failure.error("cannot read member \(i) of \(path)")
            }
            return String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// This group and everything under it, depth first, in name order.
    func tree() throws -> [DescribedObject] {
        var out: [DescribedObject] = []
        var seen = Set<UInt64>()
        try walk(into: &out, seen: &seen, depth: 0)
        return out
    }

    private func walk(into out: inout [DescribedObject], seen: inout Set<UInt64>, depth: Int) throws {
        guard depth <= limits.maxDepth else {
            throw ClipSafetyError.limitExceeded("HDF5: groups nested deeper than \(limits.maxDepth) at \(path)")
        }
        var address: UInt64 = 0
        guard clipsafety_h5_object_address(handle.id, &address) >= 0 else { throw HDF5Failure.error("cannot locate \(path)") }
        seen.insert(address)
        out.append(DescribedObject(path: path, kind: .group, attributes: try attributes(of: handle, at: address)))
        for name in try memberNames() {
            guard out.count < Self.maxObjects else {
                out.append(DescribedObject(path: child(name), kind: .other, notes: ["listing cut at \(Self.maxObjects) objects"]))
                return
            }
            try describeMember(name, into: &out, seen: &seen, depth: depth)
        }
    }

    private func describeMember(_ name: String, into out: inout [DescribedObject], seen: inout Set<UInt64>, depth: Int) throws {
        var address: UInt64 = 0
        let hard = clipsafety_h5_hard_link_address(handle.id, name, &address)
        guard hard >= 0 else { throw HDF5Failure.error("cannot read the link '\(name)' in \(path)") }
        guard hard == 1 else {
            out.append(DescribedObject(path: child(name), kind: .link, notes: ["soft or external link: not followed"]))
            return
        }
        guard !seen.contains(address) else {
            out.append(DescribedObject(path: child(name), kind: .link, notes: ["hard link to an object listed already"]))
            return
        }
        try strings.requireChecked(address, what: child(name))
        let object = try HDF5Handle(H5Oopen(handle.id, name, clipsafety_h5p_default()), "cannot open '\(child(name))'", close: H5Oclose)
        switch H5Iget_type(object.id) {
        case H5I_GROUP:
            try group(name).walk(into: &out, seen: &seen, depth: depth + 1)
        case H5I_DATASET:
            seen.insert(address)
            var d = try dataset(name)
            d.attributes = try attributes(of: object, at: address)
            out.append(d)
        default:
            seen.insert(address)
            out.append(DescribedObject(path: child(name), kind: .other, notes: ["a committed datatype or other object"]))
        }
    }

    /// A dataset's type, shape, chunking, filters and where its data lives, from its headers.
    private func dataset(_ name: String) throws -> DescribedObject {
        let what = "dataset '\(child(name))'"
        let info = try datasetInfo(name, checkStorage: false)
        let dataset = try HDF5Handle(H5Dopen2(handle.id, name, clipsafety_h5p_default()), "\(what) is not a dataset", close: H5Dclose)
        let dcpl = try HDF5Handle(H5Dget_create_plist(dataset.id), "cannot read the storage of \(what)", close: H5Pclose)
        var object = DescribedObject(path: child(name), kind: .dataset, dtype: info.dtype, shape: info.shape)
        let layout = H5Pget_layout(dcpl.id)
        if layout == H5D_CHUNKED {
            var dims = [hsize_t](repeating: 0, count: 32)
            let rank = H5Pget_chunk(dcpl.id, 32, &dims)
            if rank > 0 { object.chunks = dims.prefix(Int(rank)).map { Int(clamping: $0) } }
        } else if layout == H5D_VIRTUAL {
            object.notes.append("virtual dataset: its data is drawn from other files (never read)")
        }
        if H5Pget_external_count(dcpl.id) > 0 { object.notes.append("data kept in external files (never read)") }
        let filters = H5Pget_nfilters(dcpl.id)
        if filters > 0 {
            object.filters = (0..<min(Int(filters), 32)).map { i in
                var flags: UInt32 = 0
                var count = 0
                var config: UInt32 = 0
                let id = H5Pget_filter2(dcpl.id, UInt32(i), &flags, &count, nil, 0, nil, &config)
                return Self.filterNames[Int(id)] ?? "filter \(id)"
            }
        }
        return object
    }

    static let filterNames = [1: "deflate", 2: "shuffle", 3: "fletcher32", 4: "szip", 5: "nbit", 6: "scaleoffset"]

    /// Attributes of an object: name, type, shape and, for small ones, their values.
    private func attributes(of object: HDF5Handle, at address: UInt64) throws -> [DescribedAttribute] {
        guard !strings.denseAttributeHeaders.contains(address) else {
            return [DescribedAttribute(name: "(dense storage)", dtype: "?", shape: [], value: "attributes in a fractal heap are not read")]
        }
        let count = clipsafety_h5_attribute_count(object.id)
        guard count >= 0 else { throw HDF5Failure.error("cannot count the attributes of \(path)") }
        guard count <= 1024 else { throw ClipSafetyError.limitExceeded("HDF5: an object under \(path) has \(count) attributes") }
        return try (0..<count).map { i in
            let attr = try HDF5Handle(H5Aopen_by_idx(object.id, ".", H5_INDEX_NAME, H5_ITER_INC, hsize_t(i), clipsafety_h5p_default(), clipsafety_h5p_default()),
                                      "cannot open attribute \(i) under \(path)", close: H5Aclose)
            return try attribute(attr, object: object)
        }
    }

    private func attribute(_ attr: HDF5Handle, object: HDF5Handle) throws -> DescribedAttribute {
        let length = H5Aget_name(attr.id, 0, nil)
        guard length >= 0, length < 1 << 12 else { throw HDF5Failure.error("cannot read an attribute name under \(path)") }
        var buffer = [CChar](repeating: 0, count: length + 1)
        _ = H5Aget_name(attr.id, buffer.count, &buffer)
        let name = String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let type = try HDF5Handle(H5Aget_type(attr.id), "cannot read the type of attribute '\(name)'", close: H5Tclose)
        let space = try HDF5Handle(H5Aget_space(attr.id), "cannot read the shape of attribute '\(name)'", close: H5Sclose)
        let shape = (try? Self.shape(of: space, what: "attribute '\(name)'")) ?? []
        let points = Int(max(0, H5Sget_simple_extent_npoints(space.id)))
        let dtype = Self.typeName(type)
        var value: String?
        if dtype == "string" {
            let owner = HDF5Group(handle: object, path: path, strings: strings)
            value = try? owner.stringsAttribute(name).map { list in
                let text = list.count == 1 ? list[0] : "[" + list.prefix(Self.maxAttributeValues).joined(separator: ", ") + (list.count > Self.maxAttributeValues ? ", …" : "") + "]"
                return text.count > 200 ? String(text.prefix(200)) + "…" : text
            }
        } else if H5Tget_class(type.id) == H5T_FLOAT || H5Tget_class(type.id) == H5T_INTEGER, points <= Self.maxAttributeValues {
            var values = [Double](repeating: 0, count: max(points, 1))
            if points > 0, H5Aread(attr.id, clipsafety_h5t_native_double(), &values) >= 0 {
                let text = values.prefix(points).map { $0 == $0.rounded() && abs($0) < 1e15 ? String(Int64($0)) : "\($0)" }
                value = points == 1 && shape.isEmpty ? text[0] : "[" + text.joined(separator: ", ") + "]"
            }
        }
        return DescribedAttribute(name: name, dtype: dtype, shape: shape, value: value)
    }
}
