// Channel permutation of a pixel stream: output channel i = input channel PERM[i].
//
// A pixel is C channels in F = C/SIMD beats of SIMD elements (channel j*SIMD+s in lane
// s of beat j, as FINN folds). Any output beat may need any input channel, so a whole
// pixel is collected in the fill buffer first; the complete pixel moves to the read
// buffer in one cycle, the next pixel fills while the previous one drains, and the
// layer takes and gives one beat per cycle after the first pixel (F beats + 2 cycles
// from a pixel's first input to its first output).
//
// The permutation is a constant, so output lane s only ever reads the F channels
// PERM[j*SIMD+s], j < F: wired from the read buffer, one F:1 multiplexer per lane
// selected by the beat counter, and no index memory. PERM entry i sits at
// [i*IDX_BITS +: IDX_BITS].
module channel_permute #(
    parameter int C         = 4,
    parameter int SIMD      = 1,
    parameter int ELEM_BITS = 1,
    parameter int IDX_BITS  = 2,
    parameter logic [C*IDX_BITS-1:0] PERM = '0
) (
    input  logic                      clk,
    input  logic                      rst_n,
    input  logic [SIMD*ELEM_BITS-1:0] in_tdata,
    input  logic                      in_tvalid,
    output logic                      in_tready,
    output logic [SIMD*ELEM_BITS-1:0] out_tdata,
    output logic                      out_tvalid,
    input  logic                      out_tready
);
    localparam int F  = C / SIMD;
    localparam int FW = $clog2(F > 1 ? F : 2);
    localparam int W  = SIMD * ELEM_BITS;

    logic [C*ELEM_BITS-1:0] fill, held;
    logic [FW-1:0]          wr, rd;
    logic                   full;   // fill holds a complete pixel not yet moved to held
    logic                   busy;   // held has beats left to send
    logic                   last_in, last_out, load, in_fire, out_fire;

    assign last_in    = wr == FW'(F - 1);
    assign last_out   = rd == FW'(F - 1);
    assign out_fire   = busy && out_tready;
    // The read buffer is free now or after the beat leaving in this cycle.
    assign load       = full && (!busy || (out_tready && last_out));
    // While full, the fill buffer can only take a beat in the cycle it is emptied.
    assign in_tready  = !full || load;
    assign in_fire    = in_tvalid && in_tready;
    assign out_tvalid = busy;

    for (genvar s = 0; s < SIMD; s++) begin : lane
        logic [F*ELEM_BITS-1:0] cand;
        for (genvar j = 0; j < F; j++) begin : beat
            localparam int SRC = PERM[(j*SIMD + s)*IDX_BITS +: IDX_BITS];
            assign cand[j*ELEM_BITS +: ELEM_BITS] = held[SRC*ELEM_BITS +: ELEM_BITS];
        end
        assign out_tdata[s*ELEM_BITS +: ELEM_BITS] = cand[rd*ELEM_BITS +: ELEM_BITS];
    end

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            wr <= '0; rd <= '0; full <= 1'b0; busy <= 1'b0;
        end else begin
            if (in_fire) wr <= last_in ? '0 : wr + 1'b1;
            if (in_fire && last_in) full <= 1'b1;
            else if (load)          full <= 1'b0;
            if (load) begin
                busy <= 1'b1;
                rd   <= '0;
            end else if (out_fire) begin
                busy <= !last_out;
                rd   <= last_out ? '0 : rd + 1'b1;
            end
        end
        if (load) held <= fill;
    end

    // One enable per input word (not a write through a variable index), so every
    // buffer flip-flop takes in_tdata directly and only its clock enable is decoded.
    for (genvar k = 0; k < F; k++) begin : word
        always_ff @(posedge clk) if (in_fire && wr == FW'(k)) fill[k*W +: W] <= in_tdata;
    end
endmodule
