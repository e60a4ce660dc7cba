using Grpc.Net.Client;
using HybridServing.Contracts.Sidecar;
using HybridServing.TestKit;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace HybridServing.EngineSidecar.Tests.Infrastructure;

/// <summary>Starts a real EngineSidecar the way Program.cs does, on two Kestrel endpoints (HTTP/1.1 and h2c gRPC).</summary>
internal sealed class SidecarHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly GrpcChannel _channel;

    private SidecarHost(WebApplication app, int httpPort, int grpcPort)
    {
        _app = app;
        HttpUrl = new Uri($"http://127.0.0.1:{httpPort}/");
        GrpcUrl = new Uri($"http://127.0.0.1:{grpcPort}/");
        _channel = GrpcChannel.ForAddress(GrpcUrl);
        Client = new Contracts.Sidecar.EngineSidecar.EngineSidecarClient(_channel);
    }

    public Uri HttpUrl { get; }
    public Uri GrpcUrl { get; }
    public GrpcChannel Channel => _channel;
    public Contracts.Sidecar.EngineSidecar.EngineSidecarClient Client { get; }
    public IServiceProvider Services => _app.Services;

    /// <summary>Fast defaults for tests: sub-second polls and retries, short timeouts.</summary>
    public static Dictionary<string, string?> FastSettings(Uri engineUrl, string cacheDirectory, params string[] allowedRoots)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Sidecar:EngineUrl"] = engineUrl.ToString(),
            ["Sidecar:CacheDirectory"] = cacheDirectory,
            ["Sidecar:PodName"] = "pod-a",
            ["Sidecar:NodeName"] = "node-1",
            ["Sidecar:EngineHealthTimeoutSeconds"] = "10",
            ["Sidecar:EngineHealthIntervalSeconds"] = "0.1",
            ["Sidecar:EnginePollIntervalSeconds"] = "0.2",
            ["Sidecar:ReconcileIntervalSeconds"] = "1",
            ["Sidecar:Engine:RequestTimeoutSeconds"] = "5",
            ["Sidecar:Engine:LoadTimeoutSeconds"] = "10",
            ["Sidecar:Engine:RetryBaseDelaySeconds"] = "0.05",
            ["Sidecar:Artifacts:IdleTimeoutSeconds"] = "5",
            // Test servers (Hub layout, CDN, file servers) listen on 127.0.0.1, which the SSRF guard refuses by default.
            ["Sidecar:Sources:Http:AllowedHosts:0"] = "127.0.0.0/8",
        };
        for (var i = 0; i < allowedRoots.Length; i++) settings[$"Sidecar:AllowedLocalRoots:{i}"] = allowedRoots[i];
        return settings;
    }

    /// <param name="logs">Also receives every log line from Debug up (a secret scan), besides the capturing provider.</param>
    public static async Task<SidecarHost> StartAsync(IDictionary<string, string?> settings, string[]? args = null, ILoggerProvider? logs = null)
    {
        var httpPort = Ports.GetFree();
        var grpcPort = Ports.GetFree();
        var builder = WebApplication.CreateBuilder(HybridServing.EngineSidecar.RolloutFile.LoraSyncerCommandLine.Normalize(args ?? []));
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>(settings)
        {
            ["Kestrel:Endpoints:Http:Url"] = $"http://127.0.0.1:{httpPort}",
            ["Kestrel:Endpoints:Grpc:Url"] = $"http://127.0.0.1:{grpcPort}",
            ["Kestrel:Endpoints:Grpc:Protocols"] = "Http2",
        });
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(new CapturingLoggerProvider());
        if (logs is not null) builder.Logging.AddProvider(logs).SetMinimumLevel(LogLevel.Debug);
        builder.AddServiceDefaults();
        builder.AddEngineSidecar();
        var app = builder.Build();
        app.MapEngineSidecar();
        app.MapDefaultEndpoints();
        await app.StartAsync();
        return new SidecarHost(app, httpPort, grpcPort);
    }

    public T Get<T>() where T : notnull => _app.Services.GetRequiredService<T>();

    public async ValueTask DisposeAsync()
    {
        _channel.Dispose();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        try { await _app.StopAsync(cts.Token); } catch (OperationCanceledException) { }
        await _app.DisposeAsync();
    }
}

/// <summary>Keeps log lines in memory so tests can assert on them (e.g. that secrets never appear).</summary>
internal sealed class CapturingLoggerProvider : ILoggerProvider
{
    public static readonly System.Collections.Concurrent.ConcurrentQueue<string> Lines = new();
    public ILogger CreateLogger(string categoryName) => new Logger(categoryName);
    public void Dispose() { }

    private sealed class Logger(string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel)) Lines.Enqueue($"{logLevel} {category}: {formatter(state, exception)} {exception?.Message}");
        }
    }
}
