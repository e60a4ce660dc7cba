using System.Net;
using HybridServing.MockEngine.Faults;
using HybridServing.MockEngine.Lora;
using HybridServing.MockEngine.Metrics;
using HybridServing.MockEngine.Onnx;
using HybridServing.MockEngine.Performance;
using HybridServing.MockEngine.Serving;
using HybridServing.MockEngine.Sleep;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

namespace HybridServing.MockEngine;

/// <summary>An adapter named by <c>--lora-modules</c> could not be loaded; vLLM refuses to start then.</summary>
public sealed class MockEngineStartupException(string message) : Exception(message);

/// <summary>Composition root of the MockEngine: <c>builder.AddMockEngine(options)</c>, <c>app.MapMockEngine()</c>.</summary>
public static partial class MockEngineExtensions
{
    /// <summary>Path prefixes vLLM's <c>--api-key</c> guards; everything else (/health, /metrics, ...) stays open.</summary>
    /// <summary>What <c>/version</c> reports: the vLLM line this stand-in follows, marked as a mock.</summary>
    public const string VllmVersion = "0.11.0+mockengine";

    public static readonly IReadOnlyList<string> GuardedPrefixes = ["/v1", "/v2", "/inference", "/cohere"];

    /// <summary>
    /// Registers the engine (performance model driven by the registered <see cref="TimeProvider"/>,
    /// default the system clock), and makes Kestrel listen on <c>--host</c>:<c>--port</c>.
    /// </summary>
    public static WebApplicationBuilder AddMockEngine(this WebApplicationBuilder builder, MockEngineOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var services = builder.Services;
        services.AddSingleton(options);
        services.TryAddSingleton(TimeProvider.System);
        if (options.OnnxBackend) services.AddSingleton(new OnnxBackend(options));
        services.AddSingleton(sp => new RealTimeEngineDriver(
            EngineModelOptions.From(options), PerformanceProfile.ByName(options.Profile), sp.GetRequiredService<TimeProvider>(), options.TimeScale,
            sp.GetService<OnnxBackend>()));
        services.AddHostedService(sp => sp.GetRequiredService<RealTimeEngineDriver>());
        services.AddSingleton<LoraAdapterRegistry>();
        services.AddSingleton<LoraEndpoints>();
        services.AddSingleton<InferenceEndpoints>();
        services.AddSingleton<VllmMetricsText>();
        services.AddSingleton<FaultInjector>();
        services.AddSleepMode();
        services.AddSingleton<TokenCounter>();
        services.AddSingleton<ZeroLatencyCounters>();
        services.AddSingleton(sp => new MockEngineInspector(sp.GetRequiredService<LoraAdapterRegistry>(), sp.GetRequiredService<RealTimeEngineDriver>()));
        builder.WebHost.ConfigureKestrel(kestrel => Listen(kestrel, options.Host, options.Port));
        return builder;
    }

    /// <summary>
    /// Maps vLLM's HTTP surface (its own <c>/health</c> and <c>/metrics</c>, so not ServiceDefaults'),
    /// and loads the <c>--lora-modules</c> adapters; a failure throws <see cref="MockEngineStartupException"/>.
    /// </summary>
    public static WebApplication MapMockEngine(this WebApplication app)
    {
        var options = app.Services.GetRequiredService<MockEngineOptions>();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("HybridServing.MockEngine");

        if (options.ApiKey is { } apiKey)
        {
            var expected = "Bearer " + apiKey;
            app.Use(async (context, next) =>
            {
                var path = context.Request.Path.Value ?? "";
                var guarded = !HttpMethods.IsOptions(context.Request.Method)
                    && GuardedPrefixes.Any(p => path.StartsWith(p, StringComparison.Ordinal));
                if (guarded && !string.Equals(context.Request.Headers.Authorization.ToString(), expected, StringComparison.Ordinal))
                {
                    context.Response.StatusCode = 401;
                    await context.Response.WriteAsJsonAsync(new { error = "Unauthorized" });
                    return;
                }
                await next(context);
            });
        }

        app.UseSleepMode();
        app.MapGet("/health", (FaultInjector faults) => faults.IsDead ? Results.StatusCode(503) : Results.Ok());
        app.MapGet("/alive", () => Results.Text("Healthy"));
        // vLLM's other open routes: the version, SageMaker's ping, and the server-load counter.
        app.MapGet("/version", () => Results.Json(new { version = VllmVersion }));
        app.MapMethods("/ping", ["GET", "POST"], (FaultInjector faults) => faults.IsDead ? Results.StatusCode(503) : Results.Ok());
        app.MapGet("/load", (RealTimeEngineDriver driver) => Results.Json(new { server_load = driver.Read(m => m.RunningCount + m.WaitingCount) }));
        app.MapGet("/metrics", (VllmMetricsText metrics) => Results.Text(metrics.Render(), "text/plain; version=0.0.4; charset=utf-8"));
        app.MapGet("/v1/models", (InferenceEndpoints endpoints) => endpoints.Models());
        app.MapPost("/v1/completions", (HttpContext context, InferenceEndpoints endpoints) => endpoints.CompletionsAsync(context));
        app.MapPost("/v1/chat/completions", (HttpContext context, InferenceEndpoints endpoints) => endpoints.ChatCompletionsAsync(context));
        if (options.AllowRuntimeLoraUpdating)
        {
            app.MapPost("/v1/load_lora_adapter", (HttpContext context, LoraEndpoints endpoints) => endpoints.LoadAsync(context));
            app.MapPost("/v1/unload_lora_adapter", (HttpContext context, LoraEndpoints endpoints) => endpoints.UnloadAsync(context));
        }
        // FastAPI answers every unknown route (and the LoRA routes when runtime updating is off) with
        // 404 {"detail":"Not Found"}, and a known route called with the wrong method with 405.
        var routes = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["/health"] = "GET", ["/alive"] = "GET", ["/metrics"] = "GET", ["/version"] = "GET", ["/ping"] = "GET, POST",
            ["/load"] = "GET", ["/v1/models"] = "GET", ["/v1/completions"] = "POST", ["/v1/chat/completions"] = "POST",
        };
        if (options.AllowRuntimeLoraUpdating)
        {
            routes["/v1/load_lora_adapter"] = "POST";
            routes["/v1/unload_lora_adapter"] = "POST";
        }
        foreach (var (path, method) in app.MapSleepRoutes()) routes[path] = method;
        app.MapFallback((HttpContext context) =>
        {
            if (!routes.TryGetValue(context.Request.Path.Value ?? "", out var allowed)) return EngineErrors.NotFound();
            context.Response.Headers.Allow = allowed;
            return Results.Json(new { detail = "Method Not Allowed" }, statusCode: 405);
        });

        var registry = app.Services.GetRequiredService<LoraAdapterRegistry>();
        foreach (var module in options.LoraModules)
        {
            // Start-up loads complete before the server listens; their time is not charged to anyone.
            var result = registry.LoadAsync(module.Name, module.Path, loadInplace: false, module.BaseModelName, takeLoadTime: false, CancellationToken.None)
                .GetAwaiter().GetResult();
            if (!result.Success)
                throw new MockEngineStartupException($"--lora-modules {module.Name}={module.Path}: {result.Message}");
        }
        LogStarted(logger, options.Model, string.Join(", ", options.BaseNames), options.Host, options.Port, options.EnableLora,
            options.MaxLoras, options.EffectiveMaxCpuLoras, options.AllowRuntimeLoraUpdating, options.Profile, options.OnnxBackend, options.TimeScale, options.ZeroLatency);
        return app;
    }

    /// <summary>
    /// The process exit code, read after the host stopped: non-zero when the engine "crashed"
    /// (fault injection). Take it before <c>Run()</c>: the services are disposed afterwards.
    /// </summary>
    public static Func<int> ExitCode(this WebApplication app)
    {
        var faults = app.Services.GetRequiredService<FaultInjector>();
        return () => faults.IsDead ? 1 : 0;
    }

    private static void Listen(KestrelServerOptions kestrel, string host, int port)
    {
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase)) { kestrel.ListenLocalhost(port); return; }
        if (host is "" or "0.0.0.0") { kestrel.Listen(IPAddress.Any, port); return; }
        if (host == "::") { kestrel.Listen(IPAddress.IPv6Any, port); return; }
        if (!IPAddress.TryParse(host, out var address))
            throw new MockEngineOptionsException($"argument --host: '{host}' is not an IP address or 'localhost'");
        kestrel.Listen(address, port);
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information,
        Message = "MockEngine serving {Model} as [{Names}] on {Host}:{Port}; LoRA {EnableLora} (max_loras {MaxLoras}, max_cpu_loras {MaxCpuLoras}, runtime updating {RuntimeUpdating}); profile {Profile}, ONNX backend {Onnx}, time scale {TimeScale}, zero latency {ZeroLatency}")]
    private static partial void LogStarted(ILogger logger, string model, string names, string host, int port, bool enableLora,
        int maxLoras, int maxCpuLoras, bool runtimeUpdating, string profile, bool onnx, double timeScale, bool zeroLatency);
}
