using System.Formats.Tar;
using System.IO.Compression;
using HybridServing.Contracts.Peft;
using HybridServing.EngineSidecar.Artifacts;
using HybridServing.EngineSidecar.Tests.Infrastructure;
using HybridServing.TestKit;

namespace HybridServing.EngineSidecar.Tests.Artifacts;

/// <summary>Adapters published as one tar(.gz) file, and archives as hostile input.</summary>
public sealed class ArchiveSourceTests
{
    private static byte[] Tar(bool gzip, params (string Name, TarEntryType Type, byte[]? Data, string? Link)[] entries)
    {
        var buffer = new MemoryStream();
        using (Stream outer = gzip ? new GZipStream(buffer, CompressionLevel.Fastest, leaveOpen: true) : buffer)
        using (var writer = new TarWriter(outer, TarEntryFormat.Pax, leaveOpen: true))
        {
            foreach (var (name, type, data, link) in entries)
            {
                var entry = new PaxTarEntry(type, name);
                if (data is not null) entry.DataStream = new MemoryStream(data);
                if (link is not null) entry.LinkName = link;
                writer.WriteEntry(entry);
            }
        }
        return buffer.ToArray();
    }

    private static (string, TarEntryType, byte[]?, string?) File_(string name, byte[] data) => (name, TarEntryType.RegularFile, data, null);

    [Fact]
    public async Task A_tar_gz_with_one_top_level_folder_is_unpacked_validated_and_cached()
    {
        using var dir = new TempDirectory("arc");
        var src = TestAdapters.Write(dir.Path, "arc", rank: 16);
        var config = File.ReadAllBytes(Path.Combine(src, PeftAdapter.ConfigFileName));
        var weights = File.ReadAllBytes(Path.Combine(src, PeftAdapter.SafetensorsFileName));
        await using var server = await ArtifactServer.StartAsync();
        server.Files["pkg/arc.tar.gz"] = Tar(true, ("arc/", TarEntryType.Directory, null, null), File_("arc/adapter_config.json", config),
            File_("arc/adapter_model.safetensors", weights), File_("arc/README.md", "hello"u8.ToArray()));
        server.Files["pkg/flat.tar"] = Tar(false, File_("adapter_config.json", config), File_("adapter_model.safetensors", weights));
        var (cache, _) = ArtifactCacheTests.NewCache(dir.Combine("cache"));

        var gz = await cache.ResolveAsync(AdapterSource.Parse(server.BaseUrl + "pkg/arc.tar.gz"), null, (_, _) => { }, CancellationToken.None);
        Assert.Equal(16, gz.Info.Rank);
        Assert.Equal(["adapter_config.json", "adapter_model.safetensors"], Directory.GetFiles(gz.Path).Select(Path.GetFileName).Order());
        var flat = await cache.ResolveAsync(AdapterSource.Parse(server.BaseUrl + "pkg/flat.tar"), null, (_, _) => { }, CancellationToken.None);
        Assert.Equal(gz.Digest, flat.Digest); // same content, same cache entry
    }

    public static TheoryData<string, string> Hostile => new()
    {
        { "traversal", "escapes the archive" },
        { "absolute", "escapes the archive" },
        { "symlink", "links are refused" },
        { "two-adapters", "one adapter" },
        { "bomb", "Sidecar:Artifacts:MaxBytes" },
        { "garbage", "damaged" },
    };

    [Theory]
    [MemberData(nameof(Hostile))]
    public async Task Hostile_archives_are_refused_and_nothing_lands_outside_staging(string kind, string expected)
    {
        using var dir = new TempDirectory("arc-bad");
        var src = TestAdapters.Write(dir.Path, "x");
        var config = File.ReadAllBytes(Path.Combine(src, PeftAdapter.ConfigFileName));
        var bytes = kind switch
        {
            "traversal" => Tar(true, File_("../../adapter_config.json", config)),
            "absolute" => Tar(true, File_("/tmp/adapter_config.json", config)),
            "symlink" => Tar(true, ("adapter_model.safetensors", TarEntryType.SymbolicLink, null, "/etc/passwd")),
            "two-adapters" => Tar(true, File_("a/adapter_config.json", config), File_("b/adapter_config.json", config)),
            "bomb" => Tar(true, File_("adapter_model.safetensors", new byte[3_000_000])),
            _ => [0x1f, 0x8b, 1, 2, 3, 4, 5],
        };
        await using var server = await ArtifactServer.StartAsync();
        server.Files["evil.tgz"] = bytes;
        var (cache, _) = ArtifactCacheTests.NewCache(dir.Combine("cache"), maxBytes: 1_000_000);
        var e = await Assert.ThrowsAsync<ArtifactException>(() => cache.ResolveAsync(AdapterSource.Parse(server.BaseUrl + "evil.tgz"), null, (_, _) => { }, CancellationToken.None));
        Assert.Contains(expected, e.Message);
        Assert.False(File.Exists(dir.Combine("cache", "adapter_config.json")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(cache.Root, "tmp")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(cache.Root, "artifacts")));
    }
}
