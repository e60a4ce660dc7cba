using HybridServing.MockEngine.Performance;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace HybridServing.MockEngine.Sleep;

/// <summary>Wires sleep mode into the engine's composition root with one call per stage.</summary>
internal static class SleepModeExtensions
{
    public static IServiceCollection AddSleepMode(this IServiceCollection services) => services
        .AddSingleton(sp => new EngineSleepState(PerformanceProfile.ByName(sp.GetRequiredService<MockEngineOptions>().Profile)))
        .AddSingleton<SleepEndpoints>();

    /// <summary>Refuses model routes with 503 while the engine sleeps, and counts admitted requests so a sleep waits for them.</summary>
    public static void UseSleepMode(this WebApplication app)
    {
        if (!app.Services.GetRequiredService<MockEngineOptions>().EnableSleepMode) return;
        var state = app.Services.GetRequiredService<EngineSleepState>();
        app.Use(async (context, next) =>
        {
            var path = context.Request.Path.Value ?? "";
            if (!HttpMethods.IsPost(context.Request.Method) || !SleepEndpoints.ProtectedPaths.Contains(path, StringComparer.Ordinal))
            {
                await next(context);
                return;
            }
            if (!state.TryEnter())
            {
                await SleepEndpoints.Sleeping().ExecuteAsync(context);
                return;
            }
            try { await next(context); }
            finally { state.Exit(); }
        });
    }

    /// <summary>Maps the dev-mode routes when <c>VLLM_SERVER_DEV_MODE</c> is on; returns them for the 404/405 fallback.</summary>
    public static IReadOnlyList<(string Path, string Method)> MapSleepRoutes(this WebApplication app)
    {
        if (!app.Services.GetRequiredService<MockEngineOptions>().ServerDevMode) return [];
        app.MapPost("/sleep", (HttpContext context, SleepEndpoints endpoints) => endpoints.SleepAsync(context));
        app.MapPost("/wake_up", (HttpContext context, SleepEndpoints endpoints) => endpoints.WakeUpAsync(context));
        app.MapGet("/is_sleeping", (SleepEndpoints endpoints) => endpoints.IsSleeping());
        return [("/sleep", "POST"), ("/wake_up", "POST"), ("/is_sleeping", "GET")];
    }
}
