using HybridServing.Gateway.Observability;
using HybridServing.Gateway.Picking;
using Microsoft.Extensions.Options;

namespace HybridServing.Gateway.ColdStarts;

/// <summary>
/// The activator half of scale from zero: a request whose every holder is asleep waits (up to
/// <c>Gateway:ColdStart:Timeout</c>) for one to wake, re-picking at the load scrape interval, and is
/// counted in <c>hybridserving_gateway_held_requests</c> meanwhile: the signal the Autoscaler wakes an
/// engine on.
/// </summary>
internal sealed class AsleepPoolHold(IOptions<GatewayOptions> options, TimeProvider time, GatewayTelemetry telemetry)
{
    public async Task<PickDecision> WaitAsync(Func<PickDecision> pick, CancellationToken cancellationToken)
    {
        var o = options.Value;
        var poll = o.Load.ScrapeInterval > TimeSpan.Zero ? o.Load.ScrapeInterval : TimeSpan.FromMilliseconds(50);
        var started = time.GetTimestamp();
        telemetry.HeldRequests.Add(1);
        try
        {
            while (true)
            {
                await Task.Delay(poll, time, cancellationToken);
                var decision = pick();
                if (decision.Chosen is not null || decision.Reason != PickReasons.AllAsleep || time.GetElapsedTime(started) >= o.ColdStart.Timeout)
                    return decision;
            }
        }
        finally
        {
            telemetry.HeldRequests.Add(-1);
        }
    }
}
