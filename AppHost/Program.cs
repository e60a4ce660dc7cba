using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using HybridServing.AppHost;
using HybridServing.Hosting;
using HybridServing.Hosting.Samples;

AppHostOptions options;
try
{
    options = AppHostOptions.Parse(args);
}
catch (AppHostOptionsException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    Console.Error.WriteLine(AppHostOptions.Usage);
    return 2;
}
if (options.Help)
{
    Console.WriteLine(options.Publish is null ? AppHostOptions.Usage : PublishOptions.Usage);
    return 0;
}

if (options.Publish is null && PortCheck.Problem(options) is { } portProblem)
{
    Console.Error.WriteLine($"error: {portProblem}");
    return 3;
}

var builder = DistributedApplication.CreateBuilder([.. options.AspireArgs]);
// Aspire probes each resource's /health until it answers: every refused probe of a component still starting was a
// `fail:` with a stack trace. StartupProgress reports readiness, and any later health change, in one line each.
// First-run notes of ASP.NET Core's data protection (the dashboard's key ring) are not the user's business either.
builder.Services.AddLogging(logging => logging
    .AddFilter("Microsoft.Extensions.Diagnostics.HealthChecks.DefaultHealthCheckService", LogLevel.None)
    .AddFilter("Microsoft.AspNetCore.DataProtection", LogLevel.Error));
StartupProgress.Register(builder, Console.Out, $"http://{options.Host}:{options.GatewayPort}");
var repository = Path.GetFullPath(Path.Combine(builder.AppHostDirectory, ".."));

// Declared adapters: a folder of LoraAdapter YAML files (by default the samples, whose adapters are
// generated here before any resource starts).
var manifests = options.ManifestsPath is { } m ? Path.GetFullPath(m) : Path.Combine(builder.AppHostDirectory, "samples");
if (!Directory.Exists(manifests))
{
    Console.Error.WriteLine($"error: --manifests: directory '{manifests}' does not exist");
    return 2;
}
if (options.ManifestsPath is null && !builder.ExecutionContext.IsPublishMode)
    SampleAdapters.EnsureGenerated(manifests, options.BaseModel, Console.WriteLine, options.OnnxBackend);

var pool = builder.AddEnginePool<Projects.MockEngine, Projects.EngineSidecar>("engine", new EnginePoolOptions
{
    Engines = options.Engines,
    BaseModel = options.Publish?.BaseModel ?? options.BaseModel,
    MaxLoras = options.MaxLoras,
    MaxCpuLoras = options.MaxCpuLoras,
    Host = options.Host,
    EnginePortBase = options.EnginePortBase,
    SidecarPortBase = options.SidecarPortBase,
    AllowedLocalRoots = options.AdapterRoots.Count > 0 ? options.AdapterRoots : [manifests],
    StateDirectory = options.StateDirectory ?? Path.Combine(repository, ".hybridserving"),
    ExtraEngineArgs = options.OnnxBackend ? ["--mock-backend", "onnx", .. options.EngineArgs] : options.EngineArgs,
    SleepMode = options.AutoscalerMinEngines is not null,
    Cluster = options.Publish?.EnginePool ?? new(),
});

var controlPlane = builder.AddHybridServingControlPlane<Projects.ControlPlane>("controlplane", options.ControlPlanePort, options.ControlPlaneGrpcPort, options.Host)
    .WithLoraAdapterManifests(manifests)
    .WithEnginePool(pool);

// The local development tenant: one key for the "default" namespace (override with Parameters:dev-api-key).
// Read when the app starts, so configuration set after the app model is built (tests, benches) applies.
var devApiKey = builder.AddParameter("dev-api-key", () => builder.Configuration["Parameters:dev-api-key"] ?? "dev-key", secret: true);
var gateway = builder.AddHybridServingGateway<Projects.Gateway>("gateway", options.GatewayPort, options.Host)
    .WithControlPlane(controlPlane)
    .WithTenant("dev", devApiKey, "default");

// Engines above the demand sleep (vLLM sleep mode) and wake when load or held requests call for them.
if (options.AutoscalerMinEngines is { } minEngines)
{
    builder.AddHybridServingAutoscaler<Projects.Autoscaler>("autoscaler", controlPlane, gateway, options.AutoscalerPort, options.Host)
        .WithSleepingPool(pool, minEngines)
        // Any Autoscaler:* key the AppHost is given (environment Autoscaler__Pools__engine__StableWindow, appsettings,
        // a test's configuration) is passed on, read at start like the dev key above: e.g. shorter windows.
        .WithEnvironment(ctx =>
        {
            foreach (var (key, value) in builder.Configuration.GetSection("Autoscaler").AsEnumerable())
                if (value is not null) ctx.EnvironmentVariables[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        });
}

builder.AddHybridServingKubernetesManifests((options.Publish ?? new()).Cluster);

builder.Build().Run();
return 0;
