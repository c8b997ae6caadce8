import Foundation

/// The checkout's root: Tests/TestSupport/Paths.swift is two folders below it.
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// ../shared/reference: the reference models and figures, beside the checkout.
public let referenceDirectory = repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/reference").path
