using HybridServing.MockEngine;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace HybridServing.TestKit;

/// <summary>How <see cref="MockEngineHost"/> starts an engine, beyond its vLLM-style arguments.</summary>
public sealed record MockEngineHostOptions
{
    /// <summary>VLLM_ALLOW_RUNTIME_LORA_UPDATING as the engine sees it (on by default: tests load adapters).</summary>
    public bool AllowRuntimeLoraUpdating { get; init; } = true;

    /// <summary>Environment the engine reads instead of the process's (e.g. VLLM_API_KEY). Parallel tests never share it.</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();

    /// <summary>Clock for the performance model (FakeTimeProvider in tests that control time); default the system clock.</summary>
    public TimeProvider? TimeProvider { get; init; }

    /// <summary>Port to listen on; 0 picks a free one (kept across <see cref="MockEngineHost.RestartAsync"/>).</summary>
    public int Port { get; init; }

    /// <summary>Minimum log level of the engine's own logs (quiet by default).</summary>
    public LogLevel LogLevel { get; init; } = LogLevel.Warning;
}

/// <summary>
/// A MockEngine running in-process on real Kestrel at 127.0.0.1, started from vLLM-style arguments:
/// <c>await MockEngineHost.StartAsync("--model", "test/tiny", "--enable-lora", "--max-loras", "2")</c>.
/// </summary>
public sealed class MockEngineHost : IAsyncDisposable
{
    private readonly string[] _args;
    private readonly MockEngineHostOptions _hostOptions;
    private WebApplication? _app;

    private MockEngineHost(string[] args, MockEngineHostOptions hostOptions)
    {
        _args = args;
        _hostOptions = hostOptions;
    }

    /// <summary>The engine's root URL, e.g. <c>http://127.0.0.1:41234/</c>.</summary>
    public Uri BaseUrl => new($"http://127.0.0.1:{Port}/");

    public int Port { get; private set; }

    /// <summary>The options the engine was parsed into.</summary>
    public MockEngineOptions Options { get; private set; } = null!;

    /// <summary>The running engine's services (null after stop).</summary>
    public IServiceProvider? Services => _app?.Services;

    public bool IsRunning => _app is not null;

    /// <summary>What the running engine holds and has served (adapters, residency, requests per model).</summary>
    public MockEngineInspector Inspector => _app?.Services.GetRequiredService<MockEngineInspector>()
        ?? throw new InvalidOperationException("The engine is not running.");

    public static Task<MockEngineHost> StartAsync(params string[] args) => StartAsync(new MockEngineHostOptions(), args);

    public static async Task<MockEngineHost> StartAsync(MockEngineHostOptions hostOptions, params string[] args)
    {
        ArgumentNullException.ThrowIfNull(hostOptions);
        var host = new MockEngineHost(args, hostOptions) { Port = hostOptions.Port };
        await host.StartCoreAsync();
        return host;
    }

    /// <summary>Stops the engine (its port closes; in-flight requests are cut).</summary>
    public async Task StopAsync()
    {
        if (_app is null) return;
        var app = _app;
        _app = null;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try { await app.StopAsync(timeout.Token); }
        finally { await app.DisposeAsync(); }
    }

    /// <summary>Stops and starts a fresh engine on the same port: it comes back empty, like a restarted vLLM.</summary>
    public async Task RestartAsync()
    {
        await StopAsync();
        await StartCoreAsync();
    }

    public async ValueTask DisposeAsync() => await StopAsync();

    private async Task StartCoreAsync()
    {
        var env = new Dictionary<string, string>(_hostOptions.Environment, StringComparer.Ordinal)
        {
            [MockEngineCommandLine.RuntimeLoraUpdatingVariable] = _hostOptions.AllowRuntimeLoraUpdating ? "1" : "0",
        };
        if (_hostOptions.Environment.TryGetValue(MockEngineCommandLine.RuntimeLoraUpdatingVariable, out var explicitValue))
            env[MockEngineCommandLine.RuntimeLoraUpdatingVariable] = explicitValue;

        // The host always binds loopback; a --port in the args wins over Port for the first start.
        var args = new List<string>(_args);
        if (!args.Any(a => a.StartsWith("--host", StringComparison.Ordinal))) args.AddRange(["--host", "127.0.0.1"]);
        if (Port != 0 || !args.Any(a => a.StartsWith("--port", StringComparison.Ordinal)))
        {
            args.RemoveAll(a => a.StartsWith("--port=", StringComparison.Ordinal));
            var i = args.IndexOf("--port");
            if (i >= 0) args.RemoveRange(i, Math.Min(2, args.Count - i));
            args.AddRange(["--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        }

        Options = MockEngineCommandLine.Parse(args, name => env.TryGetValue(name, out var v) ? v : null);
        var builder = WebApplication.CreateBuilder();
        builder.Logging.SetMinimumLevel(_hostOptions.LogLevel);
        if (_hostOptions.TimeProvider is { } time) builder.Services.AddSingleton(time);
        builder.AddMockEngine(Options);
        var app = builder.Build();
        try
        {
            app.MapMockEngine();
            await app.StartAsync();
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }
        // The engine stops itself when fault injection "crashes" it; Run() would honour that, StartAsync() needs this.
        app.Lifetime.ApplicationStopping.Register(() =>
        {
            if (ReferenceEquals(_app, app)) _ = Task.Run(() => app.StopAsync());
        });
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Port = new Uri(address).Port;
        _app = app;
    }
}
