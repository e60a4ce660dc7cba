using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace HybridServing.ServiceDefaults;

/// <summary>
/// When started by the local AppHost (<c>HYBRIDSERVING_APPHOST_PID</c> is set), stops this service
/// once the AppHost process is gone, so a killed AppHost never leaves orphans behind.
/// </summary>
internal sealed partial class AppHostWatcher(int appHostPid, IHostApplicationLifetime lifetime, ILogger<AppHostWatcher> logger) : BackgroundService
{
    public const string EnvironmentVariable = "HYBRIDSERVING_APPHOST_PID";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            if (IsAlive(appHostPid)) continue;
            LogAppHostGone(appHostPid);
            lifetime.StopApplication();
            return;
        }
    }

    private static bool IsAlive(int pid)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    public static void AddIfLaunchedByAppHost(IServiceCollection services)
    {
        if (int.TryParse(Environment.GetEnvironmentVariable(EnvironmentVariable), out var pid) && pid > 0)
            services.AddHostedService(sp => ActivatorUtilities.CreateInstance<AppHostWatcher>(sp, pid));
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "The AppHost (pid {Pid}) is gone; stopping.")]
    private partial void LogAppHostGone(int pid);
}
