using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;

namespace HybridServing.AppHost;

/// <summary>
/// The console while the stack starts: one line when the start begins, one per component when it is first healthy
/// (its URL and the time since the start), one when every component is, and afterwards one per health change or
/// exit. Aspire's own per-probe health logs are off (Program.cs): while a component starts, every refused probe
/// was a <c>fail:</c> with a stack trace.
/// </summary>
internal sealed class StartupProgress(ResourceNotificationService notifications, DistributedApplicationModel model, TextWriter console, string gatewayUrl)
{
    /// <summary>Watches from before the first resource starts (Aspire's BeforeStartEvent) until the app stops.</summary>
    public static void Register(IDistributedApplicationBuilder builder, TextWriter console, string gatewayUrl)
    {
        if (builder.ExecutionContext.IsPublishMode) return;
        builder.Eventing.Subscribe<BeforeStartEvent>((e, cancellationToken) =>
        {
            var progress = new StartupProgress(e.Services.GetRequiredService<ResourceNotificationService>(), e.Model, console, gatewayUrl);
            _ = progress.RunAsync(e.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping);
            return Task.CompletedTask;
        });
    }

    private async Task RunAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        var components = model.Resources.OfType<ProjectResource>().Select(r => r.Name).ToList();
        var started = Stopwatch.StartNew();
        console.WriteLine($"Starting {components.Count} components, each once what it depends on is healthy: {string.Join(", ", components)}");
        var healthy = new Dictionary<string, bool>();
        var ended = new HashSet<string>();
        var allReady = false;
        try
        {
            await foreach (var e in notifications.WatchAsync(stoppingToken))
            {
                var name = e.Resource.Name;
                if (!components.Contains(name)) continue;
                var snapshot = e.Snapshot;
                var state = snapshot.State?.Text;
                if (state is "FailedToStart" or "Exited" or "Finished" && ended.Add(name))
                {
                    console.WriteLine($"  {name} {(state == "FailedToStart" ? "failed to start" : "exited")}{(snapshot.ExitCode is { } code ? $" (exit code {code})" : "")}: its console log is in the dashboard");
                    continue;
                }
                if (state == "Running") ended.Remove(name);
                var isHealthy = snapshot.HealthStatus == HealthStatus.Healthy && state == "Running";
                var known = healthy.TryGetValue(name, out var was);
                if (known && was == isHealthy) continue;
                if (!known && !isHealthy) continue; // still starting: not news
                healthy[name] = isHealthy;
                if (!known)
                {
                    var url = snapshot.Urls.FirstOrDefault(u => !u.IsInternal && u.Name == "http")?.Url ?? snapshot.Urls.FirstOrDefault(u => !u.IsInternal)?.Url;
                    console.WriteLine($"  ready  {name,-18} {url,-27} {started.Elapsed.TotalSeconds,5:F1} s");
                }
                else if (isHealthy)
                {
                    console.WriteLine($"  {name} is healthy again");
                }
                else
                {
                    var reasons = snapshot.HealthReports.Where(r => r.Status != HealthStatus.Healthy).Select(r => r.Description ?? r.ExceptionText).Where(t => !string.IsNullOrEmpty(t));
                    console.WriteLine($"  {name} is unhealthy: {string.Join("; ", reasons.DefaultIfEmpty("no reason given"))}");
                }
                if (!allReady && components.All(c => healthy.GetValueOrDefault(c)))
                {
                    allReady = true;
                    console.WriteLine($"All {components.Count} components are ready after {started.Elapsed.TotalSeconds:F1} s. OpenAI API: {gatewayUrl}/v1 (API key: the dev-api-key parameter, default dev-key)");
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            // The console's progress lines are a courtesy: never the reason the stack stops.
            console.WriteLine($"(start-up progress stopped: {e.Message})");
        }
    }
}
