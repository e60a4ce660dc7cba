using System.Collections.Concurrent;
using HybridServing.Contracts.Peft;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace HybridServing.EngineSidecar.Tests.Infrastructure;

public enum Misbehaviour { None, Hang, HangMidway, Truncate, Status500, Status403, SlowStart }

/// <summary>A static file server with switchable misbehaviour, counting requests per path.</summary>
internal sealed class ArtifactServer : IAsyncDisposable
{
    private KestrelApp _app = null!;
    public ConcurrentDictionary<string, byte[]> Files { get; } = new();
    public ConcurrentDictionary<string, Misbehaviour> Behaviour { get; } = new();
    public ConcurrentDictionary<string, int> Hits { get; } = new();
    public ConcurrentDictionary<string, string> Headers { get; } = new();
    public ConcurrentQueue<string?> Authorizations { get; } = new();
    /// <summary>Paths answered with 302 to another URL (the Hub redirects LFS files to a CDN this way).</summary>
    public ConcurrentDictionary<string, Uri> Redirects { get; } = new();
    public Uri BaseUrl => _app.BaseUrl;

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
        var path = Uri.UnescapeDataString(context.Request.Path.Value!.TrimStart('/'));
        Hits.AddOrUpdate(path, 1, (_, n) => n + 1);
        Authorizations.Enqueue(context.Request.Headers.Authorization.FirstOrDefault());
        if (Redirects.TryGetValue(path, out var target))
        {
            context.Response.Redirect(target.ToString());
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
        context.Response.ContentLength = bytes.Length;
        switch (behaviour)
        {
            case Misbehaviour.Truncate:
                await context.Response.Body.WriteAsync(bytes.AsMemory(0, bytes.Length / 2));
                await context.Response.Body.FlushAsync();
                context.Abort();
                return;
            case Misbehaviour.HangMidway:
                await context.Response.Body.WriteAsync(bytes.AsMemory(0, bytes.Length / 2));
                await context.Response.Body.FlushAsync();
                await Task.Delay(Timeout.Infinite, context.RequestAborted).ContinueWith(_ => { });
                return;
            default:
                await context.Response.Body.WriteAsync(bytes);
                return;
        }
    }

    public ValueTask DisposeAsync() => _app.DisposeAsync();
}

internal sealed class PlainHttpClientFactory : IHttpClientFactory
{
    public HttpClient CreateClient(string name) =>
        new(new SocketsHttpHandler { AllowAutoRedirect = true, MaxAutomaticRedirections = 5 }) { Timeout = Timeout.InfiniteTimeSpan };
}
