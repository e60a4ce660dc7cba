using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using HybridServing.Contracts.Peft;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace HybridServing.TestKit;

public enum Misbehaviour { None, Hang, HangMidway, Truncate, Status500, Status403, SlowStart }

/// <summary>
/// A static file server on real Kestrel with switchable misbehaviour, counting requests and body bytes per path.
/// It answers <c>Range: bytes=…</c> with 206 (unless <see cref="IgnoreRanges"/>), and serves the Hugging Face Hub's
/// tree listing <c>GET /api/models/{org}/{name}/tree/{revision}?recursive=true</c> for files stored under
/// <c>{org}/{name}/resolve/{revision}/</c> (safetensors files as LFS entries with their sha256), paginated with a
/// <c>Link: &lt;…&gt;; rel="next"</c> header like the Hub when <see cref="TreePageSize"/> is set.
/// </summary>
public sealed class ArtifactServer : IAsyncDisposable
{
    private KestrelApp _app = null!;
    public ConcurrentDictionary<string, byte[]> Files { get; } = new();
    public ConcurrentDictionary<string, Misbehaviour> Behaviour { get; } = new();
    public ConcurrentDictionary<string, int> Hits { get; } = new();
    /// <summary>Response body bytes written per path (what a client could have received).</summary>
    public ConcurrentDictionary<string, long> BytesServed { get; } = new();
    public ConcurrentDictionary<string, string> Headers { get; } = new();
    public ConcurrentQueue<string?> Authorizations { get; } = new();
    /// <summary>The Range header of every request, in order (null when absent).</summary>
    public ConcurrentQueue<string?> Ranges { get; } = new();
    /// <summary>Paths answered with 302 to another URL (the Hub redirects LFS files to a CDN this way).</summary>
    public ConcurrentDictionary<string, Uri> Redirects { get; } = new();
    /// <summary>Paths answered by a custom handler instead (hostile or unusual servers).</summary>
    public ConcurrentDictionary<string, Func<HttpContext, Task>> Handlers { get; } = new();
    /// <summary>Answer every request with the whole file (200) even when a Range was asked for.</summary>
    public bool IgnoreRanges { get; set; }
    /// <summary>A pause between 16 KiB chunks of a body, so that a client letting go early is seen before the kernel's socket buffers
    /// have swallowed the whole file.</summary>
    public TimeSpan ChunkDelay { get; set; }
    /// <summary>Entries per page of the Hub tree listing; 0 means one page.</summary>
    public int TreePageSize { get; set; }
    public Uri BaseUrl => _app.BaseUrl;
    public long TotalBytesServed => BytesServed.Values.Sum();

    public static async Task<ArtifactServer> StartAsync()
    {
        var server = new ArtifactServer();
        server._app = await KestrelApp.StartAsync(app => app.Map("/{**path}", server.ServeAsync));
        return server;
    }

    /// <summary>Publishes an adapter directory's two files under <paramref name="prefix"/>.</summary>
    public void AddAdapter(string prefix, string adapterDir)
    {
        Files[$"{prefix.Trim('/')}/{PeftAdapter.ConfigFileName}"] = File.ReadAllBytes(Path.Combine(adapterDir, PeftAdapter.ConfigFileName));
        Files[$"{prefix.Trim('/')}/{PeftAdapter.SafetensorsFileName}"] = File.ReadAllBytes(Path.Combine(adapterDir, PeftAdapter.SafetensorsFileName));
    }

    private async Task ServeAsync(HttpContext context)
    {
        var raw = context.Request.Path.Value!.TrimStart('/');
        var path = Uri.UnescapeDataString(raw);
        Hits.AddOrUpdate(path, 1, (_, n) => n + 1);
        Authorizations.Enqueue(context.Request.Headers.Authorization.FirstOrDefault());
        Ranges.Enqueue(context.Request.Headers.Range.FirstOrDefault());
        if (Handlers.TryGetValue(path, out var handler))
        {
            await handler(context);
            return;
        }
        if (Redirects.TryGetValue(path, out var target))
        {
            context.Response.Redirect(target.ToString());
            return;
        }
        if (raw.StartsWith("api/models/", StringComparison.Ordinal))
        {
            await ServeTreeAsync(context, raw);
            return;
        }
        var behaviour = Behaviour.GetValueOrDefault(path);
        if (behaviour == Misbehaviour.Hang)
        {
            await Task.Delay(Timeout.Infinite, context.RequestAborted).ContinueWith(_ => { });
            return;
        }
        if (behaviour == Misbehaviour.Status500) { context.Response.StatusCode = 500; return; }
        if (behaviour == Misbehaviour.Status403) { context.Response.StatusCode = 403; return; }
        if (!Files.TryGetValue(path, out var bytes)) { context.Response.StatusCode = 404; return; }
        if (behaviour == Misbehaviour.SlowStart) await Task.Delay(300);
        foreach (var (k, v) in Headers) context.Response.Headers[k] = v;

        var (offset, count) = (0L, (long)bytes.Length);
        if (!IgnoreRanges && context.Request.Headers.Range.FirstOrDefault() is { } rangeHeader)
        {
            if (!TryRange(rangeHeader, bytes.Length, out offset, out count))
            {
                context.Response.StatusCode = StatusCodes.Status416RangeNotSatisfiable;
                context.Response.Headers.ContentRange = $"bytes */{bytes.Length}";
                return;
            }
            context.Response.StatusCode = StatusCodes.Status206PartialContent;
            context.Response.Headers.ContentRange = $"bytes {offset}-{offset + count - 1}/{bytes.Length}";
        }
        context.Response.Headers.AcceptRanges = "bytes";
        context.Response.ContentLength = count;
        var body = bytes.AsMemory((int)offset, (int)count);
        switch (behaviour)
        {
            case Misbehaviour.Truncate:
                await WriteAsync(context, path, body[..(body.Length / 2)]);
                await context.Response.Body.FlushAsync();
                context.Abort();
                return;
            case Misbehaviour.HangMidway:
                await WriteAsync(context, path, body[..(body.Length / 2)]);
                await context.Response.Body.FlushAsync();
                await Task.Delay(Timeout.Infinite, context.RequestAborted).ContinueWith(_ => { });
                return;
            default:
                // In chunks, so that a client that stops reading early is seen to have received only part.
                for (var i = 0; i < body.Length; i += 16 * 1024)
                {
                    if (context.RequestAborted.IsCancellationRequested) return;
                    try
                    {
                        await WriteAsync(context, path, body[i..Math.Min(body.Length, i + 16 * 1024)]);
                        if (ChunkDelay > TimeSpan.Zero)
                        {
                            await context.Response.Body.FlushAsync(context.RequestAborted);
                            await Task.Delay(ChunkDelay, context.RequestAborted);
                        }
                    }
                    catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
                    {
                        return;
                    }
                }
                return;
        }
    }

    private async Task WriteAsync(HttpContext context, string path, ReadOnlyMemory<byte> chunk)
    {
        await context.Response.Body.WriteAsync(chunk, context.RequestAborted);
        BytesServed.AddOrUpdate(path, chunk.Length, (_, n) => n + chunk.Length);
    }

    private static bool TryRange(string header, long length, out long offset, out long count)
    {
        offset = 0;
        count = 0;
        if (!RangeHeaderValue.TryParse(header, out var range) || range.Unit != "bytes" || range.Ranges.Count != 1) return false;
        var r = range.Ranges.First();
        if (r.From is null)
        {
            var suffix = Math.Min(r.To ?? 0, length);
            if (suffix <= 0) return false;
            (offset, count) = (length - suffix, suffix);
            return true;
        }
        if (r.From >= length) return false;
        var end = Math.Min(r.To ?? length - 1, length - 1);
        (offset, count) = (r.From.Value, end - r.From.Value + 1);
        return count > 0;
    }

    /// <summary>The Hub's <c>/api/models/{org}/{name}/tree/{revision}</c>: every file and folder under the revision.</summary>
    private async Task ServeTreeAsync(HttpContext context, string raw)
    {
        var parts = raw.Split('/');
        if (parts.Length < 6 || parts[4] != "tree") { context.Response.StatusCode = 404; return; }
        var repo = parts[2] + "/" + parts[3];
        var revision = Uri.UnescapeDataString(string.Join('/', parts[5..]));
        var root = $"{repo}/resolve/{revision}/";
        var files = Files.Where(f => f.Key.StartsWith(root, StringComparison.Ordinal))
            .Select(f => (Path: f.Key[root.Length..], Bytes: f.Value)).OrderBy(f => f.Path, StringComparer.Ordinal).ToList();
        if (files.Count == 0)
        {
            context.Response.StatusCode = 404;
            await context.Response.WriteAsJsonAsync(new { error = $"Revision Not Found for url: {raw}" });
            return;
        }
        var entries = new List<object>();
        foreach (var folder in files.SelectMany(f => Folders(f.Path)).Distinct().Order(StringComparer.Ordinal))
            entries.Add(new { type = "directory", oid = Sha1(folder), size = 0, path = folder });
        foreach (var (p, bytes) in files)
        {
            // The Hub stores weights in LFS: the listing names their sha256; small text files are plain git blobs.
            if (p.EndsWith(".safetensors", StringComparison.Ordinal))
                entries.Add(new { type = "file", oid = Sha1(p), size = bytes.Length, path = p,
                    lfs = new { oid = Convert.ToHexStringLower(SHA256.HashData(bytes)), size = bytes.Length, pointerSize = 134 } });
            else
                entries.Add(new { type = "file", oid = Sha1(p), size = bytes.Length, path = p });
        }
        var page = 0;
        if (context.Request.Query["cursor"].FirstOrDefault() is { } cursor) page = int.Parse(cursor);
        var size = TreePageSize > 0 ? TreePageSize : entries.Count;
        var slice = entries.Skip(page * size).Take(size).ToList();
        if ((page + 1) * size < entries.Count)
            context.Response.Headers["Link"] = $"<{BaseUrl}{raw}?recursive=true&cursor={page + 1}>; rel=\"next\"";
        context.Response.ContentType = "application/json";
        var json = JsonSerializer.SerializeToUtf8Bytes(slice);
        await WriteAsync(context, Uri.UnescapeDataString(raw), json);
    }

    private static IEnumerable<string> Folders(string path)
    {
        for (var i = path.IndexOf('/'); i >= 0; i = path.IndexOf('/', i + 1)) yield return path[..i];
    }

    private static string Sha1(string text) => Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(text)));

    public ValueTask DisposeAsync() => _app.DisposeAsync();
}
