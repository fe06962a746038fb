import Foundation
import Runtime

extension ModelScanner {
    /// Scans files and folders. Folders are walked recursively in name order; symbolic links
    /// inside them are reported (as `symlink` findings, allowed when they stay inside the folder
    /// given) and never followed. A folder holding `saved_model.pb` is one SavedModel. A path
    /// given on the command line is followed even if it is a link.
    public static func scan(paths: [String], limits: ReaderLimits = .init()) -> [FileScan] {
        var results: [FileScan] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
                let root = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
                scanFolder(path, root: root, into: &results, limits: limits)
            } else {
                results.append(scan(file: path, limits: limits))
            }
        }
        return results
    }

    static func scanFolder(_ folder: String, root: String, into results: inout [FileScan], limits: ReaderLimits) {
        let fm = FileManager.default
        if fm.fileExists(atPath: folder + "/saved_model.pb") {
            results.append(scanSavedModelFolder(folder, root: root, limits: limits))
            return
        }
        let names: [String]
        do {
            names = try fm.contentsOfDirectory(atPath: folder).sorted()
        } catch {
            var c = ScanCollector()
            c.format = "folder"
            c.fail(error)
            results.append(c.result(path: folder, bytes: 0))
            return
        }
        for name in names {
            let path = folder + "/" + name
            if let link = symlink(path, root: root) {
                results.append(link)
                continue
            }
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
            if isDirectory.boolValue {
                scanFolder(path, root: root, into: &results, limits: limits)
            } else {
                results.append(scan(file: path, limits: limits))
            }
        }
    }

    /// A symbolic link met in a folder, as its own result; nil when `path` is not a link.
    static func symlink(_ path: String, root: String) -> FileScan? {
        guard let type = try? FileManager.default.attributesOfItem(atPath: path)[.type] as? FileAttributeType,
              type == .typeSymbolicLink else { return nil }
        let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? "?"
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        let inside = resolved == root || resolved.hasPrefix(root + "/")
        var c = ScanCollector()
        c.format = "symlink"
        c.add(.symlink, target, allowed: inside, at: ScanLocation(),
              detail: inside ? "points inside the scanned folder (not followed; its target is scanned there)" : "points outside the scanned folder (not followed)")
        return c.result(path: path, bytes: 0)
    }

    /// A SavedModel folder: `saved_model.pb` and `keras_metadata.pb` are scanned, the variables
    /// are raw data, and any other file (assets) is scanned like a file of its own.
    static func scanSavedModelFolder(_ folder: String, root: String, limits: ReaderLimits) -> FileScan {
        var c = ScanCollector()
        c.format = "savedmodel-folder"
        var total = 0
        let files = (FileManager.default.subpaths(atPath: folder) ?? []).sorted()
        for relative in files {
            let path = folder + "/" + relative
            if let link = symlink(path, root: root) {
                for f in link.findings { c.add(.symlink, f.target, allowed: f.allowed, at: ScanLocation(part: relative), detail: f.detail) }
                continue
            }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            if relative.hasPrefix("variables/") || relative == "fingerprint.pb" { continue }
            do {
                try requireRegularFile(path)
                let bytes = try MappedFile.map(path, limits: limits)
                total += bytes.count
                switch relative {
                case "saved_model.pb": SavedModelScan.scanGraph(bytes, part: relative, into: &c, limits: limits)
                case "keras_metadata.pb": SavedModelScan.scanKerasMetadata(bytes, part: relative, into: &c, limits: limits)
                default: scanContent(bytes, name: (relative as NSString).lastPathComponent, part: relative, depth: 1, topLevel: false, into: &c, limits: limits)
                }
            } catch {
                c.fail(error, in: relative)
            }
        }
        return c.result(path: folder, bytes: total)
    }
}
