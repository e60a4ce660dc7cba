using System.Formats.Tar;
using System.IO.Compression;
using HybridServing.Contracts.Peft;

namespace HybridServing.EngineSidecar.Artifacts;

/// <summary>
/// Adapters published as one <c>.tar</c>, <c>.tar.gz</c> or <c>.tgz</c> file. Only the two PEFT files are taken,
/// at the archive's root or inside one top-level folder. Archives are hostile input: an entry with an absolute
/// path or <c>..</c>, a link, or a device is refused outright, and the bytes written are capped, so neither path
/// traversal nor a decompression bomb gets past extraction.
/// </summary>
internal static class AdapterArchive
{
    private static readonly string[] Wanted = [PeftAdapter.ConfigFileName, PeftAdapter.SafetensorsFileName];

    public static bool IsArchive(string path) =>
        path.EndsWith(".tar", StringComparison.OrdinalIgnoreCase)
        || path.EndsWith(".tar.gz", StringComparison.OrdinalIgnoreCase)
        || path.EndsWith(".tgz", StringComparison.OrdinalIgnoreCase);

    /// <summary>Extracts the PEFT files of <paramref name="archive"/> into <paramref name="directory"/>.</summary>
    public static async Task ExtractAsync(string archive, string name, string directory, long maxBytes, CancellationToken cancellationToken)
    {
        var gzip = !name.EndsWith(".tar", StringComparison.OrdinalIgnoreCase);
        await using var file = File.OpenRead(archive);
        await using Stream stream = gzip ? new GZipStream(file, CompressionMode.Decompress) : file;
        long written = 0;
        string? root = null;
        try
        {
            using var reader = new TarReader(stream);
            while (await reader.GetNextEntryAsync(copyData: false, cancellationToken) is { } entry)
            {
                var entryName = entry.Name.Replace('\\', '/');
                var segments = entryName.Split('/', StringSplitOptions.RemoveEmptyEntries);
                if (entryName.StartsWith('/') || segments.Any(s => s == ".."))
                    throw new ArtifactException(FailureReasons.InvalidAdapter, $"Archive entry '{entryName}' escapes the archive; refused.");
                if (entry.EntryType is TarEntryType.SymbolicLink or TarEntryType.HardLink)
                    throw new ArtifactException(FailureReasons.InvalidAdapter, $"Archive entry '{entryName}' is a link; links are refused.");
                if (entry.EntryType is TarEntryType.Directory or TarEntryType.GlobalExtendedAttributes or TarEntryType.ExtendedAttributes) continue;
                if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile))
                    throw new ArtifactException(FailureReasons.InvalidAdapter, $"Archive entry '{entryName}' is a {entry.EntryType}; only regular files are accepted.");
                var fileName = segments.Length > 0 ? segments[^1] : "";
                if (!Wanted.Contains(fileName) || segments.Length > 2) continue;
                var folder = segments.Length == 2 ? segments[0] : "";
                if (root is not null && root != folder)
                    throw new ArtifactException(FailureReasons.InvalidAdapter, $"The archive holds adapter files in both '{root}/' and '{folder}/'; it must hold one adapter.");
                root = folder;
                if (entry.DataStream is null) continue;
                if (written + entry.Length > maxBytes)
                    throw new ArtifactException(FailureReasons.TooLarge, $"The archive unpacks to more than {maxBytes} bytes (Sidecar:Artifacts:MaxBytes).");
                var target = Path.Combine(directory, fileName);
                await using var output = new FileStream(target, FileMode.Create, FileAccess.Write, FileShare.None);
                written += await CopyCappedAsync(entry.DataStream, output, maxBytes - written, cancellationToken);
            }
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or EndOfStreamException)
        {
            throw new ArtifactException(FailureReasons.InvalidAdapter, $"The archive is damaged or not a tar{(gzip ? ".gz" : "")} file: {e.Message}");
        }
    }

    private static async Task<long> CopyCappedAsync(Stream source, Stream target, long cap, CancellationToken cancellationToken)
    {
        var buffer = new byte[1 << 16];
        long total = 0;
        int read;
        while ((read = await source.ReadAsync(buffer, cancellationToken)) > 0)
        {
            total += read;
            if (total > cap)
                throw new ArtifactException(FailureReasons.TooLarge, "The archive unpacks to more than the artifact limit (Sidecar:Artifacts:MaxBytes).");
            await target.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
        }
        return total;
    }
}
