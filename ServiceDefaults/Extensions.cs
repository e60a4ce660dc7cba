using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using Prometheus;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// Cross-cutting defaults every HybridServing service adds, after .NET Aspire's ServiceDefaults
/// template: OpenTelemetry (exported over OTLP only when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set),
/// health checks, service discovery (<c>services__{name}__{endpoint}__{index}</c>), standard HTTP
/// resilience, and Prometheus <c>/metrics</c>.
/// </summary>
public static class ServiceDefaultsExtensions
{
    public const string HealthEndpointPath = "/health";
    public const string AlivenessEndpointPath = "/alive";
    public const string MetricsEndpointPath = "/metrics";
    private const string LiveTag = "live";

    /// <summary>
    /// Adds telemetry, health checks, service discovery and resilient HTTP clients.
    /// <paramref name="useStandardResilience"/> is off for clients that stream or must not retry
    /// (the gateway's forwarder uses its own handler and is not affected either way).
    /// </summary>
    public static TBuilder AddServiceDefaults<TBuilder>(this TBuilder builder, bool useStandardResilience = true)
        where TBuilder : IHostApplicationBuilder
    {
        builder.QuietRequestLogs();
        builder.ConfigureOpenTelemetry();
        builder.AddDefaultHealthChecks();
        builder.Services.AddServiceDiscovery();
        HybridServing.ServiceDefaults.AppHostWatcher.AddIfLaunchedByAppHost(builder.Services);
        builder.Services.ConfigureHttpClientDefaults(http =>
        {
            if (useStandardResilience) http.AddStandardResilienceHandler();
            http.AddServiceDiscovery();
        });
        return builder;
    }

    /// <summary>
    /// The framework's per-request logs (ASP.NET Core's request start/finish, endpoint and result lines, every
    /// HttpClient call, YARP's forwards, gRPC calls, the health check service's line per unhealthy probe) only at Debug: at Information a sidecar polling its engine and a gateway
    /// scraping engine metrics wrote lines many times a second while idle. They come back with
    /// <c>Logging__LogLevel__Default=Debug</c> or a level set for their category
    /// (e.g. <c>Logging__LogLevel__System.Net.Http.HttpClient=Information</c>).
    /// </summary>
    public static TBuilder QuietRequestLogs<TBuilder>(this TBuilder builder)
        where TBuilder : IHostApplicationBuilder
    {
        var levels = builder.Configuration.GetSection("Logging:LogLevel");
        if (Enum.TryParse<LogLevel>(levels["Default"], ignoreCase: true, out var level) && level <= LogLevel.Debug) return builder;
        foreach (var category in RequestLogCategories)
        {
            // A level the user set for the category (or a parent of it) wins.
            if (levels.GetChildren().Any(c => c.Key != "Default" && category.StartsWith(c.Key, StringComparison.OrdinalIgnoreCase))) continue;
            // The health check service logs every unhealthy probe as an error (a component still starting, waiting for
            // its engine): the answer of /health is the state; components log their own transitions once.
            builder.Logging.AddFilter(category, category == HealthCheckCategory ? LogLevel.Critical : LogLevel.Warning);
        }
        return builder;
    }

    private const string HealthCheckCategory = "Microsoft.Extensions.Diagnostics.HealthChecks.DefaultHealthCheckService";

    internal static readonly string[] RequestLogCategories =
    [
        // ASP.NET Core's request start/finish, endpoint and result lines ("Write content with HTTP Response ContentType …").
        "Microsoft.AspNetCore",
        "System.Net.Http.HttpClient", "Yarp.ReverseProxy", "Grpc.AspNetCore.Server", "Grpc.Net.Client", HealthCheckCategory,
    ];

    public static TBuilder ConfigureOpenTelemetry<TBuilder>(this TBuilder builder)
        where TBuilder : IHostApplicationBuilder
    {
        builder.Logging.AddOpenTelemetry(logging =>
        {
            logging.IncludeFormattedMessage = true;
            logging.IncludeScopes = true;
        });

        var exporting = IsExporting(builder.Configuration);
        var otel = builder.Services.AddOpenTelemetry();
        // OpenTelemetry's metrics go out over OTLP only; without an exporter they would be aggregated per request
        // for nobody (/metrics is prometheus-net's own listener, which this does not touch).
        if (exporting)
            otel.WithMetrics(metrics => metrics
                .AddAspNetCoreInstrumentation()
                .AddHttpClientInstrumentation()
                .AddRuntimeInstrumentation()
                .AddMeter("HybridServing.*"));
        otel.WithTracing(tracing => tracing
                .SetSampler(TraceSampler(builder.Configuration))
                .AddSource(builder.Environment.ApplicationName)
                .AddSource("HybridServing.*")
                .AddAspNetCoreInstrumentation(o =>
                    // Probes and scrapes are noise in traces.
                    o.Filter = ctx => !IsInfrastructurePath(ctx.Request.Path))
                .AddGrpcClientInstrumentation()
                .AddHttpClientInstrumentation(o =>
                    // Scrapes of engine /metrics (every 50 ms from each gateway) and probes are noise too.
                    o.FilterHttpRequestMessage = request => request.RequestUri is not { } uri || !IsInfrastructurePath(uri.AbsolutePath)));

        if (exporting) otel.UseOtlpExporter();
        return builder;
    }

    /// <summary>
    /// Spans are recorded only when something exports them: without <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> nothing
    /// reads them, and creating a server span, a client span and their tags per proxied request was a visible
    /// part of the gateway's CPU per request. With an exporter: a request that arrives with a sampled parent
    /// is always recorded (traces across services stay whole); a new trace is recorded with probability
    /// <c>OTEL_TRACES_SAMPLER_ARG</c> (0..1, default 1: every request, as before).
    /// </summary>
    internal static Sampler TraceSampler(Microsoft.Extensions.Configuration.IConfiguration configuration)
    {
        if (!IsExporting(configuration)) return new AlwaysOffSampler();
        var text = configuration["OTEL_TRACES_SAMPLER_ARG"];
        if (string.IsNullOrWhiteSpace(text)) return new ParentBasedSampler(new AlwaysOnSampler());
        if (!double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var ratio) || ratio is < 0 or > 1)
            throw new InvalidOperationException($"OTEL_TRACES_SAMPLER_ARG: '{text}' is not a sampling ratio between 0 and 1.");
        return new ParentBasedSampler(new TraceIdRatioBasedSampler(ratio));
    }

    private static bool IsExporting(Microsoft.Extensions.Configuration.IConfiguration configuration) =>
        !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]);

    public static TBuilder AddDefaultHealthChecks<TBuilder>(this TBuilder builder)
        where TBuilder : IHostApplicationBuilder
    {
        builder.Services.AddHealthChecks()
            .AddCheck("self", () => HealthCheckResult.Healthy(), [LiveTag]);
        return builder;
    }

    /// <summary>
    /// Maps <c>/health</c> (all checks: ready to serve), <c>/alive</c> (liveness only) and
    /// Prometheus <c>/metrics</c>, in every environment: Kubernetes probes and the AppHost need them.
    /// Pass <paramref name="mapMetrics"/> false when the service serves its own <c>/metrics</c>
    /// (the MockEngine exposes vLLM's metric names there).
    /// </summary>
    public static WebApplication MapDefaultEndpoints(this WebApplication app, bool mapMetrics = true)
    {
        app.MapHealthChecks(HealthEndpointPath);
        app.MapHealthChecks(AlivenessEndpointPath, new HealthCheckOptions { Predicate = r => r.Tags.Contains(LiveTag) });
        if (mapMetrics)
        {
            ConfigurePrometheusBridge();
            // prometheus-net attaches its adapters lazily, at the first collection; collect once now
            // so requests served before Prometheus first scrapes are counted too.
            Metrics.DefaultRegistry.CollectAndExportAsTextAsync(Stream.Null).GetAwaiter().GetResult();
            // Exemplars (a trace id on each observation) only mean something when traces are exported.
            var requests = new HybridServing.ServiceDefaults.HttpRequestMetrics(exemplars: IsExporting(app.Configuration));
            app.Use(requests.InvokeAsync);
            app.MapMetrics(MetricsEndpointPath);
        }
        return app;
    }

    /// <summary>
    /// Narrows what prometheus-net bridges from .NET meters onto <c>/metrics</c>: everything except the
    /// framework's per-request HTTP stack (ASP.NET Core hosting, Kestrel, routing, memory pool,
    /// HttpClient). Bridging those cost a proxying service more CPU per request than its own work (a
    /// dozen measurements per request, each a label lookup); request counts and durations stay on
    /// <c>/metrics</c> as the <c>http_*</c> series (<see cref="HybridServing.ServiceDefaults.HttpRequestMetrics"/>), and OpenTelemetry still exports
    /// every framework instrument over OTLP. Event counters are read from the runtime only: listening
    /// to the HTTP and socket event sources turns on their per-request events. Applies process-wide,
    /// at the default registry's first collection.
    /// </summary>
    private static void ConfigurePrometheusBridge()
    {
        Metrics.ConfigureMeterAdapter(o => o.InstrumentFilterPredicate = i => !IsPerRequestFrameworkMeter(i.Meter.Name));
        Metrics.ConfigureEventCounterAdapter(o => o.EventSourceFilterPredicate = source => source == "System.Runtime");
    }

    internal static bool IsPerRequestFrameworkMeter(string meter) =>
        meter.StartsWith("Microsoft.AspNetCore.", StringComparison.Ordinal) || meter.StartsWith("System.Net.", StringComparison.Ordinal);

    private static bool IsInfrastructurePath(Microsoft.AspNetCore.Http.PathString path) =>
        path.StartsWithSegments(HealthEndpointPath) || path.StartsWithSegments(AlivenessEndpointPath) || path.StartsWithSegments(MetricsEndpointPath);

    private static bool IsInfrastructurePath(string path) => IsInfrastructurePath(new Microsoft.AspNetCore.Http.PathString(path));
}
