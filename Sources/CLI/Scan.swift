import ArgumentParser
import Converters
import Foundation
import Inspect
import Runtime

struct ScanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "Say whether files are safe to load in their own framework: everything they would import, call, read or write.",
        discussion: """
            Reads pickles (raw, torch zip and legacy, inside .npy object arrays and zips), \
            Keras .keras/.h5 configs, SavedModel graphs (zip or folder), HDF5 links and \
            storage, and zip member names, without running anything. Each file is safe \
            (nothing outside the allowlist of docs/SCAN.md), unsafe (the findings name what) \
            or unreadable (not read completely). Folders are scanned recursively; symbolic \
            links in them are reported, not followed. Exit 0 when every file is safe, 1 when \
            any is unsafe, 65 when any is unreadable. --json: schema clipsafety-scan/1.
            """)

    @Argument(help: "Files or folders to scan.")
    var paths: [String]

    @Flag(help: "Print the report as JSON (docs/SCAN.md).")
    var json = false

    @OptionGroup var limitOptions: LimitOptions

    func validate() throws {
        guard !paths.isEmpty else { throw ValidationError("give at least one file or folder") }
    }

    func run() throws {
        var status = ExitStatus.ok
        try ExitStatus.run {
            for path in paths {
                var isDirectory: ObjCBool = false
                let isLink = (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) != nil
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) || isLink else {
                    throw ClipSafetyError(.missingFile, "\(path): no such file or folder")
                }
            }
            let summary = ScanSummary(files: ModelScanner.scan(paths: paths, limits: limitOptions.limits))
            print(json ? try summary.json() : ScanText.render(summary))
            status = summary.exitStatus
        }
        if status != .ok { throw ExitCode(status.rawValue) }
    }
}
