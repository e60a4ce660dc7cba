using HybridServing.ClusterSimulator.Cluster;
using HybridServing.LiveValidation.Live;

namespace HybridServing.LiveValidation.Comparison;

/// <summary>
/// Figures of one run in virtual seconds: TTFT percentiles (unanswered requests count as +∞, as in the
/// simulator) and the P99 time per output token, which shows how faithfully the live engines keep model time.
/// </summary>
internal sealed record RunFigures(int Measured, int Completed, double P50, double P99, double TpotP99);

/// <summary>What the live client saw besides TTFT: whether it kept to the trace, and how the gateway spread the load.</summary>
internal sealed record LiveHealth(int Errors, double SendLagP99, double MeanTtft, IReadOnlyDictionary<string, int> RequestsByEngine);

/// <summary>One policy at one rate on both sides.</summary>
internal sealed record Cell(string Policy, double Rate, RunFigures Live, RunFigures Simulated, LiveHealth Health, double WallSeconds);

/// <summary>The simulator's and the live stack's order of the policies at one rate, by one figure.</summary>
internal sealed record RankingCheck(string Figure, double Rate, IReadOnlyList<string> Simulated, IReadOnlyList<string> Live,
    int DecisivePairs, IReadOnlyList<string> Disagreements)
{
    public bool Agrees => Disagreements.Count == 0;
}

/// <summary>
/// The tolerance and the checks. Two TTFTs agree when they differ by at most the larger of a share
/// of the simulated value and an absolute floor: the floor stands for what the live stack adds that
/// the simulator does not model (client → gateway → engine → back over loopback HTTP, scheduling on
/// a shared 2-core machine), which the time scale multiplies into virtual seconds. Rankings are
/// compared on decisive pairs only: two policies whose simulated figures are within the tolerance
/// of each other are a tie, and either live order agrees with a tie.
/// </summary>
internal sealed class Agreement(double relative, double floor)
{
    public double Relative { get; } = relative;
    public double Floor { get; } = floor;

    public bool Within(double live, double simulated) =>
        double.IsFinite(live) && double.IsFinite(simulated)
            ? Math.Abs(live - simulated) <= Math.Max(Relative * simulated, Floor)
            : live.Equals(simulated);

    /// <summary>Two simulated figures far enough apart that their order is a prediction.</summary>
    public bool Decisive(double a, double b) =>
        !(double.IsPositiveInfinity(a) && double.IsPositiveInfinity(b)) && Math.Abs(a - b) > Math.Max(Relative * Math.Min(a, b), Floor);

    public RankingCheck Rank(string figure, double rate, IReadOnlyList<Cell> cells, Func<RunFigures, double> value)
    {
        var simulated = cells.OrderBy(c => value(c.Simulated)).Select(c => c.Policy).ToList();
        var live = cells.OrderBy(c => value(c.Live)).Select(c => c.Policy).ToList();
        var decisive = 0;
        var disagreements = new List<string>();
        for (var i = 0; i < cells.Count; i++)
            for (var j = i + 1; j < cells.Count; j++)
            {
                var (a, b) = (cells[i], cells[j]);
                double sa = value(a.Simulated), sb = value(b.Simulated);
                if (!Decisive(sa, sb)) continue;
                decisive++;
                var (better, worse) = sa < sb ? (a, b) : (b, a);
                if (!(value(better.Live) < value(worse.Live)))
                    disagreements.Add($"{better.Policy} < {worse.Policy} simulated ({Show(value(better.Simulated))} vs {Show(value(worse.Simulated))} s), " +
                        $"live {Show(value(better.Live))} vs {Show(value(worse.Live))} s");
            }
        return new RankingCheck(figure, rate, simulated, live, decisive, disagreements);
    }

    public static RunFigures Simulated(RunResult r) => new(r.Measured, r.Completed, r.TtftP50, r.TtftP99, r.TpotP99);

    public static (RunFigures Figures, LiveHealth Health) Live(IReadOnlyList<LiveRequest> requests)
    {
        var measured = requests.Where(r => r.Measured).ToList();
        var ttft = measured.Select(r => r.Done && r.Ttft is { } t ? t : double.PositiveInfinity).ToList();
        ttft.Sort();
        var tpot = measured.Where(r => r.Done && r.Tpot is not null).Select(r => r.Tpot!.Value).ToList();
        var figures = new RunFigures(measured.Count, measured.Count(r => r.Done),
            Percentiles.Of(ttft, 0.5, sorted: true), Percentiles.Of(ttft, 0.99, sorted: true), tpot.Count > 0 ? Percentiles.Of(tpot, 0.99) : double.NaN);
        var lags = requests.Select(r => r.SendLag).ToList();
        var health = new LiveHealth(
            requests.Count(r => r.Status is not 0 and not 200),
            Percentiles.Of(lags, 0.99),
            ttft.Count > 0 ? ttft.Average() : double.NaN,
            requests.Where(r => r.Engine is not null).GroupBy(r => r.Engine!).OrderBy(g => g.Key, StringComparer.Ordinal)
                .ToDictionary(g => g.Key, g => g.Count()));
        return (figures, health);
    }

    public static string Show(double seconds) => seconds switch
    {
        double.PositiveInfinity => "∞",
        double.NaN => "—",
        _ => seconds.ToString(seconds < 10 ? "0.000" : "0.0", System.Globalization.CultureInfo.InvariantCulture),
    };

    public static string Milliseconds(double seconds) =>
        double.IsFinite(seconds) ? (seconds * 1000).ToString("0.0", System.Globalization.CultureInfo.InvariantCulture) + " ms" : Show(seconds);
}
