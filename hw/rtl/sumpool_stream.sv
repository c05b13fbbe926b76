// Sum pool over the window stream of FINN's depthwise sliding-window generator:
// FINN's Pool with Function AccPool (the sum) or QuantAvgPool (the sum shifted right).
//
// The generator emits, per output pixel and channel fold, the K window positions one
// beat each (PE channels per beat): (OH, OW, C/PE, K, PE). Every K consecutive beats
// give one output beat, the lane-wise sum >>> SHIFT. The shift is arithmetic on
// signed inputs, so a QuantAvgPool average rounds towards minus infinity as FINN's
// right_shift does; the result is truncated to OUT_BITS, which FINN sizes to hold it.
module sumpool_stream #(
    parameter int PE        = 1,
    parameter int IN_BITS   = 4,
    parameter bit IN_SIGNED = 1,
    parameter int K         = 4,
    parameter int SHIFT     = 2,
    parameter int OUT_BITS  = 4
) (
    input  logic                    clk,
    input  logic                    rst_n,
    input  logic [PE*IN_BITS-1:0]   in_tdata,
    input  logic                    in_tvalid,
    output logic                    in_tready,
    output logic [PE*OUT_BITS-1:0]  out_tdata,
    output logic                    out_tvalid,
    input  logic                    out_tready
);
    // One sign bit more than the largest sum needs, so unsigned sums stay positive.
    localparam int AW = IN_BITS + $clog2(K > 1 ? K : 2) + 1;

    logic [PE*AW-1:0]       acc, next_acc;
    logic [PE*OUT_BITS-1:0] result;
    logic                   fire, first, last;

    window_group #(.K(K)) group (
        .clk, .rst_n, .in_tvalid, .in_tready, .out_tvalid, .out_tready, .fire, .first, .last
    );

    always_comb begin
        for (int p = 0; p < PE; p++) begin
            logic signed [AW-1:0] x, s;
            x = IN_SIGNED ? AW'($signed(in_tdata[p*IN_BITS +: IN_BITS]))
                          : AW'($unsigned(in_tdata[p*IN_BITS +: IN_BITS]));
            s = first ? x : $signed(acc[p*AW +: AW]) + x;
            next_acc[p*AW +: AW] = s;
            result[p*OUT_BITS +: OUT_BITS] = OUT_BITS'(s >>> SHIFT);
        end
    end

    always_ff @(posedge clk) begin
        if (fire) begin
            acc <= next_acc;
            if (last) out_tdata <= result;
        end
    end
endmodule
